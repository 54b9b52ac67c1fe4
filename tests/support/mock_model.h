/* mock_model.h: what the mock's stand-in model and search engine answer to the example flows
 * (examples/flows: agent, resumes), so that `make run` and the tests play them with no network and
 * no real model. Rules on the prompt's text, written out here so that a reader of a flow's output can
 * tell where each answer came from:
 *
 *   agent decide   a prompt holding "### ACTION SPACE": when the text after "Previous research:"
 *                  starts with "none yet", a fenced YAML decision to search for the text of the
 *                  "Question:" line (action: search, search_query: <question>); otherwise a
 *                  decision to answer (action: answer).
 *   agent answer   a prompt holding "## YOUR ANSWER": of the first line after "Research:" that
 *                  starts with "- TITLE: TEXT", "TEXT (source: TITLE)"; "I found nothing about
 *                  <the question>." when there is none.
 *   resume         a prompt holding "Evaluate the following resume": fenced YAML with
 *                  candidate_name (the text after "Name:" on its line), qualifies (true when the
 *                  resume names a degree, bachelor or master or PhD, and a number of years of at
 *                  least 3 before the word "year"), and reasons (one line for each of the two).
 *
 * Functions are pure (no state), safe from any thread, and never fail on any text. */
#ifndef MOCK_MODEL_H
#define MOCK_MODEL_H

#include <jansson.h>

/* The model's answer to prompt (the last user message) by the rules above: a new string reference,
 * or NULL when no rule applies (or out of memory). */
json_t *mock_model_answer(const char *prompt);

/* The search engine: {"query": q, "results": [{"title", "url", "snippet"}, ...]}, at most three
 * entries of a small built-in corpus, the ones sharing the most words of four letters or more with
 * q first (none: an empty list). A new reference, NULL when out of memory. */
json_t *mock_search(const char *q);

#endif
