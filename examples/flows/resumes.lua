-- resumes.lua: the logic of resumes.json, PocketFlow's map-reduce (its cookbook's
-- pocketflow-map-reduce): the map step's prompt for one resume, and the reduce that counts.

function evaluate_prep(shared, params)
  local resume = params.item
  return {prompt = table.concat({
    "Evaluate the following resume and determine if the candidate qualifies for an advanced",
    "technical role. Criteria for qualification:",
    "- At least a bachelor's degree in a relevant field",
    "- At least 3 years of relevant work experience",
    "- Strong technical skills relevant to the position",
    "",
    "Resume:",
    resume.text,
    "",
    "Return your evaluation in YAML format:",
    "```yaml",
    "candidate_name: [Name of the candidate]",
    "qualifies: [true/false]",
    "reasons:",
    "  - [First reason for qualification/disqualification]",
    "  - [Second reason, if applicable]",
    "```",
  }, "\n")}
end

-- exec_res: the map's results in the order of shared.resumes, each the llm node's {text, data, ...}
function reduce(shared, prep_res, exec_res, params)
  local evaluations, qualified = json.array({}), json.array({})
  for i, result in ipairs(exec_res) do
    local verdict = result.data
    evaluations[#evaluations + 1] = {
      file = shared.resumes[i].file,
      candidate_name = verdict.candidate_name,
      qualifies = verdict.qualifies,
      reasons = verdict.reasons,
    }
    if verdict.qualifies then
      qualified[#qualified + 1] = verdict.candidate_name
    end
  end
  shared.evaluations = evaluations
  shared.summary = {total = #exec_res, qualified_count = #qualified, qualified = qualified}
  log(#qualified, "of", #exec_res, "candidates qualify")
end
