/* mock_model.c: the stand-in model's rules and the search corpus of mock_model.h. Plain string
 * scanning over the prompt: the rules look for markers the example flows' prompts carry, so a
 * change of a prompt in examples/flows that drops its marker makes the mock answer generically
 * and the example's test fails, as it should. */
#include "support/mock_model.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_WORD 64

/* The rest of the line that starts after marker in text, as a new string ("" when the marker is
 * missing), blanks around it dropped. NULL when out of memory. */
static char *line_after(const char *text, const char *marker)
{
    const char *s = strstr(text, marker), *end;

    if (!s)
        return strdup("");
    s += strlen(marker);
    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strcspn(s, "\r\n");
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return strndup(s, (size_t)(end - s));
}

static int starts_with_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static json_t *agent_decide(const char *prompt)
{
    const char *research = strstr(prompt, "Previous research:");
    char *question = line_after(prompt, "Question:");
    json_t *answer;

    if (!question)
        return NULL;
    if (research) {
        research += strlen("Previous research:");
        while (isspace((unsigned char)*research))
            research++;
    }
    if (!research || starts_with_ci(research, "none yet"))
        answer = json_sprintf("```yaml\n"
                              "thinking: |\n"
                              "    Nothing is known yet about the question; a search comes first.\n"
                              "action: search\n"
                              "reason: there is no research to answer from\n"
                              "search_query: %s\n"
                              "```\n", question);
    else
        answer = json_string("```yaml\n"
                             "thinking: |\n"
                             "    The research so far covers the question.\n"
                             "action: answer\n"
                             "reason: the previous research answers it\n"
                             "```\n");
    free(question);
    return answer;
}

static json_t *agent_answer(const char *prompt)
{
    const char *research = strstr(prompt, "Research:");
    char *question = line_after(prompt, "Question:");
    json_t *answer = NULL;

    if (!question)
        return NULL;
    while (research && (research = strchr(research, '\n')) != NULL) {
        research++;
        if (research[0] == '-' && research[1] == ' ') {
            const char *title = research + 2;
            int line = (int)strcspn(title, "\r\n");
            const char *colon = memchr(title, ':', (size_t)line);

            if (colon && colon[1] == ' ')
                answer = json_sprintf("%.*s (source: %.*s)", line - (int)(colon + 2 - title),
                                      colon + 2, (int)(colon - title), title);
            else
                answer = json_sprintf("%.*s", line, title);
            break;
        }
    }
    if (!answer)
        answer = json_sprintf("I found nothing about %s.", question);
    free(question);
    return answer;
}

/* The largest number N in text followed (after blanks and a "+") by "year"; 0 when none. */
static long most_years(const char *text)
{
    long best = 0;

    for (const char *s = text; *s;) {
        if (isdigit((unsigned char)*s) && (s == text || !isalnum((unsigned char)s[-1]))) {
            char *end;
            long n = strtol(s, &end, 10);

            s = end;
            while (*s == ' ' || *s == '+')
                s++;
            if (starts_with_ci(s, "year") && n > best && n < 100)
                best = n;
        } else {
            s++;
        }
    }
    return best;
}

static const char *degree_in(const char *text)
{
    static const char *const degrees[][2] = {{"bachelor", "a bachelor's degree"},
                                             {"master", "a master's degree"},
                                             {"phd", "a PhD"}, {"ph.d", "a PhD"}};

    for (size_t i = 0; i < sizeof degrees / sizeof degrees[0]; i++) {
        if (strcasestr(text, degrees[i][0]))
            return degrees[i][1];
    }
    return NULL;
}

static json_t *resume_verdict(const char *prompt)
{
    const char *resume = strstr(prompt, "Resume:");
    char *name;
    const char *degree;
    long years;
    char why_degree[96], why_years[96];
    json_t *answer;

    resume = resume ? resume : prompt;
    name = line_after(resume, "Name:");
    if (!name)
        return NULL;
    degree = degree_in(resume);
    years = most_years(resume);
    if (degree)
        snprintf(why_degree, sizeof why_degree, "names %s", degree);
    else
        snprintf(why_degree, sizeof why_degree, "names no bachelor's, master's or PhD degree");
    if (years > 0)
        snprintf(why_years, sizeof why_years, "names %ld year%s of experience%s", years,
                 years == 1 ? "" : "s", years < 3 ? ", fewer than 3" : "");
    else
        snprintf(why_years, sizeof why_years, "names no years of experience");
    answer = json_sprintf("```yaml\n"
                          "candidate_name: \"%s\"\n"
                          "qualifies: %s\n"
                          "reasons:\n"
                          "  - %s\n"
                          "  - %s\n"
                          "```\n",
                          *name ? name : "unknown", degree && years >= 3 ? "true" : "false",
                          why_degree, why_years);
    free(name);
    return answer;
}

json_t *mock_model_answer(const char *prompt)
{
    if (!prompt)
        return NULL;
    if (strstr(prompt, "### ACTION SPACE"))
        return agent_decide(prompt);
    if (strstr(prompt, "## YOUR ANSWER"))
        return agent_answer(prompt);
    if (strstr(prompt, "Evaluate the following resume"))
        return resume_verdict(prompt);
    return NULL;
}

/* ---- search ---------------------------------------------------------------------------------- */

static const struct entry {
    const char *title, *url, *snippet;
} corpus[] = {
    {"Nobel Prize in Physics 2024", "https://www.nobelprize.org/prizes/physics/2024/summary/",
     "John Hopfield and Geoffrey Hinton won the 2024 Nobel Prize in Physics for foundational "
     "discoveries that enable machine learning with artificial neural networks."},
    {"PocketFlow", "https://github.com/The-Pocket/PocketFlow",
     "PocketFlow is a 100-line LLM framework: nodes with prep, exec and post, joined by actions "
     "into flows, batches and agents."},
    {"libuv", "https://libuv.org/",
     "libuv is a multi-platform C library for asynchronous I/O, written for Node.js and used by "
     "many servers."},
    {"Lua (programming language)", "https://www.lua.org/about.html",
     "Lua is a small embeddable scripting language, made in 1993 at PUC-Rio in Brazil; redis, "
     "nginx and HAProxy let their users script in it."},
    {"Nobel Prize in Chemistry 2024", "https://www.nobelprize.org/prizes/chemistry/2024/summary/",
     "David Baker won half of the 2024 Nobel Prize in Chemistry for computational protein design; "
     "Demis Hassabis and John Jumper the other half for protein structure prediction."},
};

/* How many distinct words of q (letters and digits, four or more) the entry holds, any case. */
static int overlap(const struct entry *e, const char *q)
{
    int score = 0;

    while (*q) {
        char word[MAX_WORD];
        size_t n = 0;

        while (*q && !isalnum((unsigned char)*q))
            q++;
        while (isalnum((unsigned char)*q)) {
            if (n + 1 < sizeof word)
                word[n++] = *q;
            q++;
        }
        word[n] = '\0';
        if (n >= 4 && (strcasestr(e->title, word) || strcasestr(e->snippet, word)))
            score++;
    }
    return score;
}

json_t *mock_search(const char *q)
{
    size_t count = sizeof corpus / sizeof corpus[0];
    int scores[sizeof corpus / sizeof corpus[0]];
    json_t *results = json_array(), *answer;

    if (!results)
        return NULL;
    for (size_t i = 0; i < count; i++)
        scores[i] = overlap(&corpus[i], q);
    /* the best first, ties in corpus order: three passes of a selection are enough */
    for (int k = 0; k < 3; k++) {
        size_t best = count;

        for (size_t i = 0; i < count; i++) {
            if (scores[i] > 0 && (best == count || scores[i] > scores[best]))
                best = i;
        }
        if (best == count)
            break;
        json_array_append_new(results, json_pack("{ssssss}", "title", corpus[best].title, "url",
                                                 corpus[best].url, "snippet",
                                                 corpus[best].snippet));
        scores[best] = 0;
    }
    answer = json_pack("{ssso}", "query", q, "results", results);
    return answer;
}
