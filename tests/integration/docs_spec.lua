-- Doc tests: every command README.md, docs/tutorial.md, docs/cookbook.md,
-- docs/coverage.md and `luahost --help` show is run as written, after the
-- README's setup, and what it prints is compared with what the document
-- shows.
--
-- What is run (the convention, also in docs/building.md):
--   - Every ```sh block. In a block whose lines start with "$ ", each
--     such line is a command, and the lines after it, up to the next
--     "$ ", are what it prints (stdout and stderr together, as on a
--     terminal). In a block without "$ ", every line is a command (a line
--     starting with # is a comment); it must exit with status 0, and what
--     it prints is not compared. A command goes on over the next lines
--     while a quote or a here-document is open, or its line ends with \.
--   - In shown output, a line "..." stands for any number of lines, and
--     "..." inside a line (with the spaces around it) for any text: what
--     varies from run to run (addresses, counts of code that reads the
--     environment) is left out that way, and the text says so.
--   - A comment on the line just before a block's opening fence,
--     <!-- doctest: ITEM; ITEM -->, says more:
--       skip REASON   not run: reported as skipped, with REASON
--       file NAME     the block is the file NAME ("save this as"): written
--                     where the commands run, before any of them
--       env           its commands set up the environment (export, .):
--                     they are repeated before every later command of the
--                     document; README.md's, before every command of all
--       needs PROG... skipped, saying so, unless each PROG is in PATH
--       setup-qemu    names the QEMU tools/setup builds for build/lua5.4
--                     (~/.cache/luahost/qemu-trixie): skipped in builds
--                     for another QEMU
--       debian N      the output shown is Debian N's (its programs and
--                     libraries): skipped on other releases
--   - The examples of `luahost --help` (its EXAMPLES section, up to the
--     first blank line) are run as a block without "$ ", where a
--     prog-aarch64 has been made as the help says.
--
-- How: each document runs in a fresh directory laid out as a checkout
-- (a symlink to each file of the source tree) whose build/lua5.4 is the
-- build under test, as the README's setup leaves it; commands run in
-- order, each in bash, in the environment the README sets up and no
-- other (env -i: HOME, PATH, LANG=C.UTF-8: counts of code that reads the
-- environment stay the same from run to run; in a sanitizer build, also
-- what preloads its runtime into QEMU), stdin /dev/null, killed after
-- 120 s.
local helper = require("helper")

local DOCS = { "README.md", "docs/tutorial.md", "docs/cookbook.md", "docs/coverage.md" }

local function read_lines(text)
    local lines = {}
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        lines[#lines + 1] = line
    end
    if lines[#lines] == "" and text:sub(-1) == "\n" then
        lines[#lines] = nil
    end
    return lines
end

-- The items of a <!-- doctest: ... --> comment.
local function parse_marker(text)
    local m = {}
    for item in text:gmatch("[^;]+") do
        local word, rest = item:match("^%s*(%S+)%s*(.-)%s*$")
        if word == "skip" then
            m.skip = rest
        elseif word == "file" then
            m.file = rest
        elseif word == "env" then
            m.env = true
        elseif word == "needs" then
            m.needs = {}
            for p in rest:gmatch("%S+") do
                m.needs[#m.needs + 1] = p
            end
        elseif word == "setup-qemu" then
            m.setup_qemu = true
        elseif word == "debian" then
            m.debian = rest
        else
            error("unknown doctest item: " .. item)
        end
    end
    return m
end

-- The fenced blocks of a Markdown text: { lang, lines, line (of the
-- fence, 1-based), marker }. A fence may be indented (in a list); its
-- lines lose that indentation.
local function blocks(text)
    local lines, out = read_lines(text), {}
    local i, marker = 1, nil
    while i <= #lines do
        local line = lines[i]
        local indent, lang = line:match("^(%s*)```(%w*)%s*$")
        local m = line:match("^%s*<!%-%- doctest: (.-) %-%->%s*$")
        if m then
            marker = parse_marker(m)
        elseif indent then
            local block = { lang = lang, lines = {}, line = i, marker = marker or {} }
            i = i + 1
            while i <= #lines and not lines[i]:match("^%s*```%s*$") do
                block.lines[#block.lines + 1] = lines[i]:sub(1, #indent) == indent
                    and lines[i]:sub(#indent + 1) or lines[i]
                i = i + 1
            end
            out[#out + 1] = block
            marker = nil
        else
            marker = nil
        end
        i = i + 1
    end
    return out
end

-- Whether shell text still needs more lines: an open quote, a trailing
-- backslash, or a here-document whose end has not come.
local function incomplete(text)
    local state, i = nil, 1
    while i <= #text do
        local c = text:sub(i, i)
        if state == nil then
            if c == "'" or c == '"' then
                state = c
            elseif c == "\\" then
                i = i + 1
            elseif c == "#" and (i == 1 or text:sub(i - 1, i - 1):match("%s")) then
                local nl = text:find("\n", i, true)
                if not nl then
                    break
                end
                i = nl
            end
        elseif state == "'" then
            if c == "'" then
                state = nil
            end
        elseif c == "\\" then
            i = i + 1
        elseif c == '"' then
            state = nil
        end
        i = i + 1
    end
    if state or text:match("\\$") then
        return true
    end
    local delimiter = text:match("<<%-?%s*'?\"?([%w_]+)")
    if delimiter then
        local done = false
        for l in text:gmatch("\n([^\n]*)") do
            done = done or l == delimiter
        end
        return not done
    end
    return false
end

-- The commands of a sh block: { text, line (offset in the block),
-- expected (a list of lines, or nil: not compared) }.
local function commands(lines)
    local prompted = false
    for _, l in ipairs(lines) do
        prompted = prompted or l:match("^%$ ") ~= nil
    end
    local out, i = {}, 1
    while i <= #lines do
        local l = lines[i]
        local first = prompted and l:match("^%$ (.*)$") or (not prompted and l ~= "" and not l:match("^#") and l)
        if first then
            local cmd = { text = first, line = i }
            while incomplete(cmd.text) and i < #lines do
                i = i + 1
                cmd.text = cmd.text .. "\n" .. lines[i]
            end
            if prompted then
                cmd.expected = {}
                while i < #lines and not lines[i + 1]:match("^%$ ") do
                    i = i + 1
                    cmd.expected[#cmd.expected + 1] = lines[i]
                end
            end
            out[#out + 1] = cmd
        end
        i = i + 1
    end
    return out
end

-- A shown line as a Lua pattern: "...", with the spaces around it, is
-- any text (so that a number left out keeps its column).
local function line_pattern(shown)
    local pattern, start = "^", 1
    while true do
        local a, b = shown:find(" *%.%.%. *", start)
        if not a then
            return pattern .. shown:sub(start):gsub("%p", "%%%0") .. "$"
        end
        pattern = pattern .. shown:sub(start, a - 1):gsub("%p", "%%%0") .. ".-"
        start = b + 1
    end
end

local function rstrip_lines(lines)
    local out = {}
    for i, l in ipairs(lines) do
        out[i] = l:gsub("%s+$", "")
    end
    while out[#out] == "" do
        out[#out] = nil
    end
    return out
end

-- Whether the printed lines are what the document shows.
local function same_output(shown, printed)
    shown, printed = rstrip_lines(shown), rstrip_lines(printed)
    local memo = {}
    local function match(i, j)
        local key = i * 100000 + j
        if memo[key] == nil then
            local r
            if i > #shown then
                r = j > #printed
            elseif shown[i] == "..." then
                r = match(i + 1, j) or (j <= #printed and match(i, j + 1))
            else
                r = j <= #printed and printed[j]:match(line_pattern(shown[i])) ~= nil and match(i + 1, j + 1)
            end
            memo[key] = r
        end
        return memo[key]
    end
    return match(1, 1)
end

local function in_path(program)
    return (helper.sh("command -v " .. helper.quote(program) .. " >/dev/null"))== 0
end

local function realpath(path)
    local _, out = helper.sh("readlink -f " .. helper.quote(path))
    return (out or ""):match("[^\n]*")
end

-- Why a block cannot run here, or nil.
local function skip_reason(marker)
    if marker.skip then
        return marker.skip
    end
    for _, p in ipairs(marker.needs or {}) do
        if not in_path(p) then
            return p .. " is not installed"
        end
    end
    if marker.setup_qemu then
        local setup = realpath(os.getenv("HOME") .. "/.cache/luahost/qemu-trixie/build")
        if realpath(helper.qemu_build()) ~= setup then
            return "names the QEMU tools/setup builds for build/lua5.4 (" .. setup
                .. "); this build is for " .. helper.qemu_build()
        end
    end
    if marker.debian then
        local version = helper.read("/etc/debian_version") or ""
        if not version:match("^" .. marker.debian .. "%f[^%d]") then
            return "the output shown is Debian " .. marker.debian .. "'s; this is Debian " .. version:gsub("%s+$", "")
        end
    end
    return nil
end

-- A directory laid out as a checkout: the source tree's files, and the
-- build under test as build/lua5.4.
local function make_checkout()
    local dir = os.tmpname() .. ".doc"
    local src = helper.source_root
    local cmd = ("mkdir -p %s/build && cd %s && for f in %s/* %s/.luacheckrc; do"
        .. ' case ${f##*/} in build) ;; *) ln -s "$f" . ;; esac; done && ln -s %s build/lua5.4')
        :format(helper.quote(dir), helper.quote(dir), helper.quote(src), helper.quote(src),
            helper.quote(helper.build_root()))
    local status, _, err = helper.sh(cmd)
    assert(status == 0, err)
    return dir
end

-- Runs a command in dir after the environment lines; returns its status
-- and what it printed (stdout and stderr together).
local function run(dir, env_lines, text)
    local out = helper.tmpname()
    local script = { "cd " .. helper.quote(dir) }
    for _, e in ipairs(env_lines) do
        script[#script + 1] = e
    end
    script[#script + 1] = "{"
    script[#script + 1] = text
    script[#script + 1] = "} </dev/null 2>&1 | cat >" .. helper.quote(out)
    script[#script + 1] = "exit ${PIPESTATUS[0]}"
    local path = helper.write(helper.tmpname(), table.concat(script, "\n") .. "\n")
    local status = helper.sh(("timeout -k 5 120 env -i HOME=%s PATH=%s LANG=C.UTF-8 %s bash %s")
        :format(helper.quote(os.getenv("HOME")), helper.quote(os.getenv("PATH")),
            helper.sanitizer_env(), helper.quote(path)))
    return status, helper.read(out) or ""
end

local function short(text)
    local first = text:match("[^\n]*")
    if #first > 70 then
        first = first:sub(1, 67) .. "..."
    end
    return first .. (text:find("\n", 1, true) and " ..." or "")
end

local readme_env = {}

-- Declares the tests of one document: blocks as blocks() returns them,
-- name for messages; prepare(dir), if given, runs before the commands.
local function doc_tests(name, doc_blocks, prepare)
    local dir
    local env_lines = {}
    for _, e in ipairs(readme_env) do
        env_lines[#env_lines + 1] = e
    end
    local files = {}
    for _, b in ipairs(doc_blocks) do
        if b.marker.file then
            files[b.marker.file] = table.concat(b.lines, "\n") .. "\n"
        end
    end

    setup(function()
        dir = make_checkout()
        for file, text in pairs(files) do
            helper.write(dir .. "/" .. file, text)
        end
        if prepare then
            prepare(dir)
        end
    end)
    teardown(function()
        os.execute("rm -rf " .. helper.quote(dir))
    end)
    after_each(helper.cleanup)

    for _, b in ipairs(doc_blocks) do
        if b.lang == "sh" and not b.marker.file then
            local why = skip_reason(b.marker)
            for _, cmd in ipairs(commands(b.lines)) do
                local title = ("line %d: %s"):format(b.line + cmd.line, short(cmd.text))
                local env_now = table.move(env_lines, 1, #env_lines, 1, {})
                if b.marker.env then
                    env_lines[#env_lines + 1] = cmd.text
                    if name == "README.md" then
                        readme_env[#readme_env + 1] = cmd.text
                    end
                end
                if why then
                    pending(("%s: %s"):format(title, why))
                else
                    it(title, function()
                        local status, printed = run(dir, env_now, cmd.text)
                        assert.are.equal(0, status,
                            ("%s\nexit status %d; it printed:\n%s"):format(cmd.text, status, printed))
                        if cmd.expected then
                            assert.is_true(same_output(cmd.expected, read_lines(printed)),
                                ("%s\nthe document shows:\n%s\nit printed:\n%s"):format(cmd.text,
                                    table.concat(cmd.expected, "\n"), printed))
                        end
                    end)
                end
            end
        end
    end
end

describe("doc test conventions", function()
    it("match shown output with ... for lines and for text", function()
        assert.is_true(same_output({ "a", "...", "z" }, { "a", "b", "c", "z" }))
        assert.is_true(same_output({ "a", "...", "z" }, { "a", "z" }))
        assert.is_true(same_output({ "x=0x..., 1" }, { "x=0x7f12, 1" }))
        assert.is_true(same_output({ "[2, 4)        ... |@@|" }, { "[2, 4)    351901 |@@|" }))
        assert.is_false(same_output({ "a", "z" }, { "a", "b", "z" }))
        assert.is_false(same_output({ "x=1" }, { "x=12" }))
        assert.is_false(same_output({ "a" }, { "a", "b" }))
    end)

    it("read a command over lines while a quote or a here-document is open", function()
        local cmds = commands({ "$ luahost -e 'a", "b' -- x", "out 1", "$ cat >f <<'EOF'", "x", "EOF", "$ y" })
        assert.are.same({ "luahost -e 'a\nb' -- x", "cat >f <<'EOF'\nx\nEOF", "y" },
            { cmds[1].text, cmds[2].text, cmds[3].text })
        assert.are.same({ "out 1" }, cmds[1].expected)
        assert.are.same({}, cmds[3].expected)
        cmds = commands({ "# a comment", "luahost x \\", "  -- y  # the end", "", "z 'it''s'" })
        assert.are.same({ "luahost x \\\n  -- y  # the end", "z 'it''s'" }, { cmds[1].text, cmds[2].text })
        assert.is_nil(cmds[1].expected)
    end)
end)

for _, doc in ipairs(DOCS) do
    describe(doc, function()
        local text = assert(helper.read(helper.source_root .. "/" .. doc), doc)
        doc_tests(doc, blocks(text))
    end)
end

describe("luahost --help", function()
    local status, manual = helper.sh(helper.quote(helper.build_launcher()) .. " --help")
    assert(status == 0, "luahost --help failed")
    local examples = assert(manual:match("\nEXAMPLES\n(.-)\n\n"), "no EXAMPLES in luahost --help")
    local lines = {}
    for _, l in ipairs(read_lines(examples)) do
        lines[#lines + 1] = l:gsub("^    ", "")
    end
    local marker = in_path("aarch64-linux-gnu-gcc") and {} or { needs = { "aarch64-linux-gnu-gcc" } }
    local help_blocks = {}
    for _, cmd in ipairs(commands(lines)) do   -- one block a command: only prog-aarch64 needs the compiler
        help_blocks[#help_blocks + 1] = { lang = "sh", lines = read_lines(cmd.text), line = 0,
            marker = cmd.text:find("prog-aarch64", 1, true) and marker or {} }
    end
    doc_tests("luahost --help", help_blocks, function(dir)
        if marker.needs then
            return
        end
        helper.write(dir .. "/prog.c", '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
        local s, _, err = helper.sh(("cd %s && aarch64-linux-gnu-gcc -o prog-aarch64 prog.c"):format(helper.quote(dir)))
        assert(s == 0, err)
    end)
end)
