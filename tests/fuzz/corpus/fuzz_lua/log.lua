log("n is", value.n, value.deep)
return value.deep.a.b.c[1]