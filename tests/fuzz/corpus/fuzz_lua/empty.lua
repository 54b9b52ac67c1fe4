value.empty = {}
value.obj = json.array({})
value.z = json.null
return json.object({})