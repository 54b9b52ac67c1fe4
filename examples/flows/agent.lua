-- agent.lua: the logic of agent.json, PocketFlow's research agent (its cookbook's pocketflow-agent):
-- decide builds its prompt from the question and what the agent has learned and reads the model's
-- YAML decision; search's post keeps what the search found, as data, in shared.research.

-- shared.research as the text the prompts show: a "Search: query" line, then "- title: snippet"
local function research_text(research)
  if not research or #research == 0 then
    return "none yet"
  end
  local lines = {}
  for _, r in ipairs(research) do
    lines[#lines + 1] = "Search: " .. r.query
    if #r.results == 0 then
      lines[#lines + 1] = "(nothing found)"
    end
    for _, hit in ipairs(r.results) do
      lines[#lines + 1] = "- " .. hit.title .. ": " .. hit.snippet
    end
  end
  return table.concat(lines, "\n")
end

function decide_prep(shared, params)
  if type(shared.question) ~= "string" then
    error('the job needs a question: {"shared": {"question": "..."}}')
  end
  return {prompt = table.concat({
    "### CONTEXT",
    "You are a research assistant that can search the web.",
    "Question: " .. shared.question,
    "Previous research:",
    research_text(shared.research),
    "",
    "### ACTION SPACE",
    "[1] search",
    "  Description: Look up more information on the web",
    "  Parameters:",
    "    - query (str): What to search for",
    "",
    "[2] answer",
    "  Description: Answer the question with current knowledge",
    "",
    "## NEXT ACTION",
    "Decide the next action based on the context and available actions.",
    "Return your response in this format:",
    "",
    "```yaml",
    "thinking: |",
    "    <your step-by-step reasoning process>",
    "action: search OR answer",
    "reason: <why you chose this action>",
    "search_query: <specific search query if action is search>",
    "```",
  }, "\n")}
end

function decide_post(shared, prep_res, exec_res, params)
  local decision = exec_res.data
  local searches = shared.research and #shared.research or 0
  if decision.action == "search" and searches < params.max_searches then
    shared.search_query = decision.search_query or shared.question
    log("search for", shared.search_query, "-", decision.reason)
    return "search"
  end
  if decision.action == "search" then
    log("searched", searches, "times already (params.max_searches): answering")
  else
    log("answer -", decision.reason)
  end
  return "answer"
end

function search_post(shared, prep_res, exec_res, params)
  local results = json.array({})
  for _, hit in ipairs(exec_res.body.results) do
    results[#results + 1] = {title = hit.title, url = hit.url, snippet = hit.snippet}
  end
  if not shared.research then
    shared.research = json.array({})
  end
  table.insert(shared.research, {query = shared.search_query, results = results})
  log(#results, "results for", shared.search_query)
  return "decide"
end

function answer_prep(shared, params)
  return {prompt = table.concat({
    "### CONTEXT",
    "Based on the following information, answer the question.",
    "Question: " .. shared.question,
    "Research:",
    research_text(shared.research),
    "",
    "## YOUR ANSWER:",
    "Provide a comprehensive answer using the research results.",
  }, "\n")}
end
