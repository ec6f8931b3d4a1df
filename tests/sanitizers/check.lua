-- The last test of a sanitizer build (tests/sanitizers/meson.build): the
-- reports the runtimes wrote into DIR while the other tests ran, one
-- directory per test, one file per process (NAME.EXE.PID), and the stderr
-- of commands that showed a UBSan report (ubsan.stderr.*, which
-- helper.sh copies: UBSan writes nowhere else). Any report
-- fails: it is printed with the test it came from, and every file read is
-- removed, so that the next run starts clean. A process whose exit status
-- no test checks (a run expected to fail, one killed by a signal) cannot
-- hide a report this way.
--
--     lua5.4 tests/sanitizers/check.lua DIR
local dir = assert(arg[1], "usage: check.lua DIR")

-- What a runtime prints that is not a report: ASan's notes on QEMU's
-- coroutines (qemu-system switches stacks with swapcontext).
local NOT_REPORTS = {
    "WARNING: ASan doesn't fully support makecontext/swapcontext",
    "WARNING: ASan is ignoring requested __asan_handle_no_return",
}

local function quote(s)
    return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function is_report(line)
    if not (line:find("ERROR: ", 1, true) or line:find("WARNING: ", 1, true)
            or line:find("FATAL: ", 1, true) or line:find(": runtime error: ", 1, true)) then
        return false
    end
    for _, benign in ipairs(NOT_REPORTS) do
        if line:find(benign, 1, true) then
            return false
        end
    end
    return true
end

local files = {}
local list = assert(io.popen("find " .. quote(dir) .. " -type f 2>/dev/null | sort"))
for path in list:lines() do
    files[#files + 1] = path
end
list:close()

local reports = 0
for _, path in ipairs(files) do
    local f = assert(io.open(path, "r"))
    local text = f:read("a")
    f:close()
    local n = 0
    for line in text:gmatch("[^\n]+") do
        if is_report(line) then
            n = n + 1
        end
    end
    if n > 0 then
        reports = reports + n
        print(("=== %s (test %s)"):format(path:match("[^/]+$"), path:match("([^/]+)/[^/]+$")))
        io.write(text, text:sub(-1) == "\n" and "" or "\n")
    end
    os.remove(path)
end
print(("%d sanitizer report%s in %d file%s"):format(reports, reports == 1 and "" or "s",
    #files, #files == 1 and "" or "s"))
os.exit(reports == 0 and 0 or 1)
