local t = {}
for k, v in pairs(value) do t[#t + 1] = k end
table.sort(t)
return t