value.big = value.big + 1
return math.type(value.big)