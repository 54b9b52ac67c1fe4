local a = value.messages
value.copy = a
value.copy[1].role = "x"
return value.messages[1].role