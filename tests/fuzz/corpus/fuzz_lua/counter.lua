value.n = value.n + 1
return value.n