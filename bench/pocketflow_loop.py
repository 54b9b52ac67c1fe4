"""bench/pocketflow_loop.py N: PocketFlow's Python on the loop that `flow-bench lua-steps` runs in
Lua, for bench/run-lua.sh to compare in the same run: one async node whose prep reads the counter and
whose post adds one, writes it back and returns "again" until N (PocketFlow's own bench.py does the
same with an exec in the middle). Prints one key=value line like flow-bench.

PYTHONPATH must reach PocketFlow's pocketflow module (run-lua.sh sets it from POCKETFLOW_DIR).
"""
import asyncio, sys, time, warnings

from pocketflow import AsyncFlow, AsyncNode

warnings.filterwarnings("ignore")  # "Flow ends: 'done' not found": the loop's end, on purpose


class Count(AsyncNode):
    async def prep_async(self, shared):
        return shared["n"]

    async def post_async(self, shared, prep_res, exec_res):
        shared["n"] = prep_res + 1
        return "again" if shared["n"] < shared["limit"] else "done"


async def main():
    n = int(sys.argv[1])
    count = Count()
    count - "again" >> count
    shared = {"n": 0, "limit": n}
    t = time.perf_counter()
    await AsyncFlow(start=count).run_async(shared)
    wall = time.perf_counter() - t
    assert shared["n"] == n
    print(f"pocketflow_steps={n} wall_s={wall:.3f} steps_per_s={n / wall:.0f} ns_per_step={wall * 1e9 / n:.0f}")


asyncio.run(main())
