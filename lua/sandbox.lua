-- sandbox: each script's own globals, package table and require, so that
-- several scripts in one run (script= given more than once) keep apart:
-- a global one script sets is not another's, and a module a script
-- requires (agg, report, one of its own) is loaded once per script, with
-- that script's luahost, arguments and output.
--
-- Shared by the whole process: the standard libraries, package.preload
-- and C modules (a shared library is loaded once per process, as by the
-- stock require). Globals are copied, not inherited through __index, so
-- that a global read costs what it costs in _G.
local sandbox = {}

-- load and loadfile of the script's env unless given one (an env given
-- as nil is nil, as in the stock functions).
local function env_loaders(env)
    local function env_load(chunk, chunkname, mode, ...)
        if select("#", ...) > 0 then
            return load(chunk, chunkname, mode, ...)
        end
        return load(chunk, chunkname, mode, env)
    end
    local function env_loadfile(filename, mode, ...)
        if select("#", ...) > 0 then
            return loadfile(filename, mode, ...)
        end
        return loadfile(filename, mode, env)
    end
    local function env_dofile(filename)
        local chunk, err = env_loadfile(filename)
        if not chunk then
            error(err, 2)
        end
        return chunk()
    end
    return env_load, env_loadfile, env_dofile
end

-- A C module, a preloaded one or a standard library: the stock require,
-- given this script's cpath and no Lua path (Lua files are this script's
-- own, loaded by script_require).
local function shared_require(name, cpath, lua_misses)
    local path, saved_cpath = package.path, package.cpath
    package.path, package.cpath = "", cpath
    local ok, result, extra = pcall(require, name)
    package.path, package.cpath = path, saved_cpath
    if ok then
        return result, extra
    end
    local message = tostring(result)
    local head, preload, misses = message:match("^(module '.-' not found:)(\n\tno field [^\n]*)(.*)$")
    if head and lua_misses ~= "" then
        lua_misses = "\n\t" .. lua_misses:gsub("^\n\t", "")    -- Lua 5.4 leaves out the first
        message = head .. preload .. lua_misses .. misses
    elseif head then
        message = head .. preload .. misses
    end
    error(message, 3)
end

local function script_require(pkg, env, mode)
    return function(name)
        if type(name) ~= "string" then
            error(("bad argument #1 to 'require' (string expected, got %s)"):format(type(name)), 2)
        end
        local value = pkg.loaded[name]
        if value ~= nil then
            return value
        end
        local file, misses = package.searchpath(name, pkg.path)
        if not file or package.preload[name] then
            local shared, extra = shared_require(name, pkg.cpath, misses or "")
            return shared, extra
        end
        local chunk, err = loadfile(file, mode, env)
        if not chunk then
            if err:find("attempt to load a binary chunk", 1, true)
                    or err:find("attempt to load chunk with wrong mode", 1, true) then
                err = "it is precompiled Lua, which Lua does not check: a bad chunk can crash QEMU. "
                    .. "Load it with bytecode=on, or give the source"
            end
            error(("error loading module '%s' from file '%s':\n\t%s"):format(name, file, err), 2)
        end
        value = chunk(name, file)
        if value ~= nil then
            rawset(pkg.loaded, name, value)
        elseif rawget(pkg.loaded, name) == nil then
            rawset(pkg.loaded, name, true)
        end
        return rawget(pkg.loaded, name), file
    end
end

-- LuaJIT does not bound nested coroutine resumes (each takes host stack:
-- a coroutine that resumes a coroutine, without end, crashes QEMU); Lua
-- 5.4 stops them at 200 C levels. The same bound, with Lua 5.4's error.
local MAX_NESTED_RESUMES = 200
local nested = 0
local unpack = rawget(table, "unpack") or rawget(_G, "unpack")     -- 5.4, LuaJIT

local function pack(...)
    return { n = select("#", ...), ... }
end

local function guarded_coroutines()
    local co = {}
    for k, v in pairs(coroutine) do
        co[k] = v
    end
    local resume, create = coroutine.resume, coroutine.create
    local function checked_resume(thread, ...)
        if nested >= MAX_NESTED_RESUMES then
            return false, "C stack overflow (coroutines resumed more than 200 deep)"
        end
        nested = nested + 1
        local results = pack(resume(thread, ...))
        nested = nested - 1
        return unpack(results, 1, results.n)
    end
    co.resume = checked_resume
    co.wrap = function(fn)
        local thread = create(fn)
        return function(...)
            local results = pack(checked_resume(thread, ...))
            if not results[1] then
                -- as the stock wrap: a string gets the caller's place
                error(results[2], type(results[2]) == "string" and 2 or 0)
            end
            return unpack(results, 2, results.n)
        end
    end
    return co
end

-- A new environment for a script: _G's globals, with luahost, package
-- (path and cpath the script's own) and require of its own, which loads
-- Lua modules in mode ("t": text only, "bt").
function sandbox.new(luahost, path, cpath, mode)
    local env = {}
    for k, v in pairs(_G) do
        env[k] = v
    end
    local pkg = {}
    for k, v in pairs(package) do
        pkg[k] = v
    end
    pkg.path, pkg.cpath = path, cpath
    pkg.loaded = setmetatable({ luahost = luahost, _G = env, package = pkg },
        { __index = package.loaded })
    env._G = env
    env.package = pkg
    env.luahost = luahost
    env.require = script_require(pkg, env, mode)
    env.load, env.loadfile, env.dofile = env_loaders(env)
    if jit then
        env.coroutine = guarded_coroutines()
    end
    if env.loadstring then
        env.loadstring = env.load       -- LuaJIT
    end
    return env
end

return sandbox
