-- chat.lua: the logic of chat.json, PocketFlow's chat with memory (its cookbook's
-- pocketflow-chat-memory, without the vector search): the model sees the system prompt, the last
-- params.window messages and what the person just said; shared.messages keeps them all.

function hear_post(shared, prep_res, exec_res, params)
  if exec_res:lower():match("^%s*bye%s*$") then
    log("the person said bye after", shared.messages and #shared.messages or 0, "messages")
    return "bye"
  end
end

function reply_prep(shared, params)
  local messages = {{role = "system", content = params.system}}
  local history = shared.messages
  if history then
    for i = math.max(1, #history - params.window + 1), #history do
      messages[#messages + 1] = history[i]
    end
  end
  messages[#messages + 1] = {role = "user", content = shared.said}
  return {messages = messages}
end

function reply_post(shared, prep_res, exec_res, params)
  if not shared.messages then
    shared.messages = json.array({})
  end
  table.insert(shared.messages, {role = "user", content = shared.said})
  table.insert(shared.messages, {role = "assistant", content = exec_res.text})
  log("the model saw", #prep_res.messages, "messages;", #shared.messages, "kept")
end
