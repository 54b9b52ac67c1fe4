-- wrk script: each thread sends JOBS_PER_THREAD POSTs of a job (body from env JOB_BODY), then only
-- GETs /healthz until wrk is stopped (wrk runs for its whole duration: bench/run-durable.sh stops it
-- once the POSTs are answered). No response() callback: wrk would parse every answer, and become
-- slower than flowd.
local limit = tonumber(os.getenv("JOBS_PER_THREAD") or "1000")
local posts = 0
local post, health

function init(args)
    wrk.headers["Content-Type"] = "application/json"
    post = wrk.format("POST", nil, nil, os.getenv("JOB_BODY") or '{"flow":"noop","shared":{"n":1}}')
    health = wrk.format("GET", "/healthz")
end

function request()
    if posts < limit then
        posts = posts + 1
        return post
    end
    return health
end
