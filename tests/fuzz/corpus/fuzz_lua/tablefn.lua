table.insert(value.list, {x = 1})
table.remove(value.list, 1)
return #value.list