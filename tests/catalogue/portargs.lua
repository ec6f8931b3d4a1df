-- Each shipped script's own arguments (scripts/ and examples/): an unknown
-- option and malformed values of its typed ones refuse the plugin with
-- one line naming the script's line.
local lib = require("catalogue.lib")
local refused = lib.refused

local cases = {}

-- script (under scripts/ or examples/) refuses args with message, which
-- follows "SCRIPT:LINE: "; message may be a pair { Lua 5.4's, LuaJIT's }.
local function bad(script, line, args, message)
    local name = script:match("[^/]*$") .. " " .. table.concat(args, ",")
    if type(message) == "table" then
        message = { "SCRIPT:" .. line .. ": " .. message[1], "SCRIPT:" .. line .. ": " .. message[2] }
    else
        message = "SCRIPT:" .. line .. ": " .. message
    end
    cases[#cases + 1] = refused(message, { name = name, script = script, args = args })
end

-- script warns that an address argument named nothing, and the run goes on.
local function never_named(script, args, arg, what, log)
    cases[#cases + 1] = { name = script:match("[^/]*$") .. " " .. table.concat(args, ","), script = script,
        args = args, status = 0, log = log,
        stderr_is = ("luahost: warning: %s never named an address during the run (%s: no mapped module "
            .. "defines it)\n"):format(arg, what) }
end

local RANGE = { "integer argument out of range (-2^63 to 2^63 - 1)", "integer argument out of range (-2^53 to 2^53)" }

bad("scripts/hotblocks.lua", 22, { "colour=red" },
    "option parsing failed: colour=red (known options: format, inline, limit, symbolize)")
bad("scripts/hotblocks.lua", 22, { "limit=12x" }, "integer argument parsing failed: limit=12x")
bad("scripts/hotblocks.lua", 22, { "limit=" }, "integer argument parsing failed: limit=")
bad("scripts/hotblocks.lua", 22, { "limit=99999999999999999999" },
    { RANGE[1] .. ": limit=99999999999999999999", RANGE[2] .. ": limit=99999999999999999999" })
bad("scripts/hotblocks.lua", 22, { "limit=-99999999999999999999" },
    { RANGE[1] .. ": limit=-99999999999999999999", RANGE[2] .. ": limit=-99999999999999999999" })
bad("scripts/hotblocks.lua", 22, { "inline=perhaps" }, "boolean argument parsing failed: inline=perhaps")
bad("scripts/hotblocks.lua", 22, { "format=xml" }, "expected one of text, csv, json: format=xml")
bad("scripts/hotblocks.lua", 22, { "symbolize=2" }, "boolean argument parsing failed: symbolize=2")
bad("scripts/hotblocks.lua", 29, { "limit=-5" }, "limit must be at least 0: limit=-5")

local function geometry(cache, size, block, assoc, why)
    local prefix = cache == "L2 cache" and "l2" or cache:sub(1, 1)
    return ("%s cannot be constructed from given parameters: %s (%scachesize=%s, %sblksize=%s, %sassoc=%s)"):format(
        cache, why, prefix, size, prefix, block, prefix, assoc)
end
bad("scripts/bbv.lua", 20, { "outfile=OUTFILE", "colour=red" },
    "option parsing failed: colour=red (known options: interval)")
bad("scripts/bbv.lua", 20, { "outfile=OUTFILE", "interval=zz" },
    "unsigned 64-bit argument parsing failed (not a number (decimal, 0x hex or 0 octal)): interval=zz")
bad("scripts/bbv.lua", 28, { "outfile=OUTFILE", "interval=0" }, "interval must be at least 1")
bad("scripts/bbv.lua", 25, { "interval=5" }, "outfile unspecified")

bad("scripts/cache.lua", 37, { "colour=red" }, "option parsing failed: colour=red (known options: cores, dassoc, "
    .. "dblksize, dcachesize, evict, iassoc, iblksize, icachesize, l2, l2assoc, l2blksize, l2cachesize, limit, "
    .. "seed, symbolize)")
bad("scripts/cache.lua", 37, { "evict=mru" }, "invalid eviction policy: evict=mru")
bad("scripts/cache.lua", 37, { "l2=maybe" }, "boolean argument parsing failed: l2=maybe")
bad("scripts/cache.lua", 37, { "seed=x" }, "integer argument parsing failed: seed=x")
bad("scripts/cache.lua", 98, { "dassoc=0" },
    geometry("dcache", 16384, 64, 0, "associativity must be a positive integer"))
bad("scripts/cache.lua", 98, { "dblksize=0" }, geometry("dcache", 16384, 0, 8, "block size must be a power of two"))
bad("scripts/cache.lua", 98, { "dblksize=3" }, geometry("dcache", 16384, 3, 8, "block size must be a power of two"))
bad("scripts/cache.lua", 98, { "dcachesize=-1" },
    geometry("dcache", -1, 64, 8, "cache size must be a positive integer"))
bad("scripts/cache.lua", 98, { "dcachesize=1000" },
    geometry("dcache", 1000, 64, 8, "cache size must be divisible by block size"))
bad("scripts/cache.lua", 98, { "iassoc=3" },
    geometry("icache", 16384, 64, 3, "cache size must be divisible by set size (assoc * block size)"))
bad("scripts/cache.lua", 98, { "dassoc=99999999" },
    geometry("dcache", 16384, 64, 99999999, "cache size must be divisible by set size (assoc * block size)"))
bad("scripts/cache.lua", 98, { "iblksize=1099511627776" },
    geometry("icache", 16384, 1099511627776, 8, "cache size must be divisible by block size"))
bad("scripts/cache.lua", 98, { "l2cachesize=100" },
    geometry("L2 cache", 100, 64, 16, "cache size must be divisible by block size"))
bad("scripts/cache.lua", 98, { "dcachesize=4503599627370496" }, geometry("dcache", 4503599627370496, 64, 8,
    "cache size / block size is 70368744177664 blocks, more than the 16777216 (2^24) simulated"))
bad("scripts/cache.lua", 100, { "l2cachesize=1073741824", "cores=2" },
    "cores=2: 2 cores of these caches hold 33555456 blocks, more than the 33554432 (2^25) simulated")
bad("scripts/cache.lua", 69, { "cores=0" }, "cores must be at least 1: cores=0")
bad("scripts/cache.lua", 69, { "cores=-1" }, "cores must be at least 1: cores=-1")
bad("scripts/cache.lua", 104, { "limit=-1" }, "limit must be at least 0: limit=-1")

bad("scripts/execlog.lua", 35, { "colour=red" },
    "option parsing failed: colour=red (known options: afilter, ifilter, rdisas, reg, symbolize)")
bad("scripts/execlog.lua", 35, { "rdisas=x" }, "boolean argument parsing failed: rdisas=x")
bad("scripts/execlog.lua", 35, { "symbolize=maybe" }, "boolean argument parsing failed: symbolize=maybe")
bad("scripts/execlog.lua", 46, { "afilter=0x99999999999999999" }, "wider than 64 bits: afilter=0x99999999999999999")
never_named("scripts/execlog.lua", { "afilter=zz" }, "afilter=zz", "zz")

bad("scripts/howvec.lua", 31, { "table=zz" }, "expected one of ARCH, default: table=zz")
bad("scripts/howvec.lua", 31, { "verbose=2" }, "boolean argument parsing failed: verbose=2")
bad("scripts/howvec.lua", 31, { "inline=x" }, "boolean argument parsing failed: inline=x")
bad("scripts/howvec.lua", 44, { "count=zz" },
    "unknown class zz (known: int, priv, call, ret, jump, avx512, avx, sse, mmx, fpu, other): count=zz")
bad("scripts/howvec.lua", 44, { "count=" },
    "unknown class  (known: int, priv, call, ret, jump, avx512, avx, sse, mmx, fpu, other): count=")

bad("scripts/stoptrigger.lua", 65, {}, "'icount' or 'addr' argument missing")
bad("scripts/stoptrigger.lua", 49, { "icount=x" }, "icount parsing failed: 'x' must be a positive integer")
bad("scripts/stoptrigger.lua", 49, { "icount=-1" }, "icount parsing failed: '-1' must be a positive integer")
bad("scripts/stoptrigger.lua", 49, { "icount=0" }, "icount parsing failed: '0' must be a positive integer")
bad("scripts/stoptrigger.lua", 49, { "icount=" }, "icount parsing failed: '' must be a positive integer")
bad("scripts/stoptrigger.lua", 49, { "icount=99999999999999999999999" },
    "icount parsing failed: '99999999999999999999999' must be a positive integer")
bad("scripts/stoptrigger.lua", 25, { "icount=5:x" },
    "icount exit code parsing failed: 'x' is not a number (decimal, 0x hex or 0 octal)")
bad("scripts/stoptrigger.lua", 38, { "addr=0x401000:999" }, "addr parsing failed: exit code '999' is not 0 to 255")
never_named("scripts/stoptrigger.lua", { "addr=zz" }, "addr=zz", "zz")

bad("scripts/drcov.lua", 19, { "colour=red" }, "option parsing failed: colour=red (known options: filename, modules)")
bad("scripts/drcov.lua", 19, { "modules=some" }, "expected one of one, all: modules=some")
bad("scripts/drcov.lua", 26, { "filename=TMP/no/x.trace" },
    "filename=TMP/no/x.trace: TMP/no/x.trace: No such file or directory")
bad("scripts/drcov.lua", 26, { "filename=TMP" }, "filename=TMP: TMP: Is a directory")

bad("scripts/cflow.lua", 27, { "topn=5" }, "option parsing failed: topn=5 (known options: sort)")
bad("scripts/cflow.lua", 27, { "sort=coldest" }, "expected one of hottest, early, exceptions: sort=coldest")
bad("scripts/uftrace.lua", 29, { "colour=red" },
    "option parsing failed: colour=red (known options: dir, symfiles, trace-privilege-level)")
bad("scripts/uftrace.lua", 29, { "trace-privilege-level=2" },
    "boolean argument parsing failed: trace-privilege-level=2")
bad("scripts/uftrace.lua", 56, { "dir=/dev/null/x" }, "dir=/dev/null/x: cannot create a file in this directory")

bad("examples/between.lua", 16, {}, "give from=ADDR and to=ADDR")
bad("examples/between.lua", 16, { "from=main" }, "give from=ADDR and to=ADDR")
bad("examples/between.lua", 18, { "from=0xzz", "to=main" }, "not a number (decimal, 0x hex or 0 octal): from=0xzz")
never_named("examples/between.lua", { "from=main", "to=zz_nope" }, "to=zz_nope", "zz_nope")
bad("examples/branches.lua", 12, { "limit=x" }, "integer argument parsing failed: limit=x")
bad("examples/branches.lua", 14, { "limit=-1" }, "limit must be at least 0: limit=-1")
bad("examples/callcount.lua", 16, {}, "give fn=NAME (repeat it for several functions)")
never_named("examples/callcount.lua", { "fn=nope_fn" }, "fn=nope_fn", "nope_fn", { "@calls[nope_fn]: 0\n" })
bad("examples/firstblocks.lua", 11, { "n=x" }, "integer argument parsing failed: n=x")
bad("examples/firstblocks.lua", 13, { "n=-3" }, "n must be at least 0: n=-3")
bad("examples/callgrind.lua", 17, { "x=1" }, "option parsing failed: x=1 (known options: none)")
bad("examples/coverage.lua", 26, { "modules=one" }, "expected one of all, program: modules=one")
bad("examples/coverage.lua", 26, { "format=html" }, "expected one of lcov, drcov: format=html")
bad("examples/coverage.lua", 31, { "format=drcov" },
    "format=drcov writes a binary file: give one with -o FILE (outfile=FILE)")
bad("examples/flamegraph.lua", 15, { "format=png" }, "expected one of svg, folded: format=png")
bad("examples/flamegraph.lua", 15, { "per_vcpu=2" }, "boolean argument parsing failed: per_vcpu=2")
bad("examples/flamegraph.lua", 15, { "width=x" }, "integer argument parsing failed: width=x")
bad("examples/flamegraph.lua", 29, { "width=5" }, "width must be 100 to 100000 pixels")
bad("examples/flamegraph.lua", 15, { "min_width=-1" }, "min_width must be a number of pixels, 0 or more: min_width=-1")
bad("examples/hotfuncs.lua", 15, { "by=file" }, "expected one of function, module: by=file")
bad("examples/hotfuncs.lua", 21, { "limit=-1" }, "limit must be at least 0: limit=-1")
bad("examples/insnmix.lua", 10, { "format=yaml" }, "expected one of text, csv, json: format=yaml")
bad("examples/insnmix.lua", 12, { "limit=-1" }, "limit must be at least 0: limit=-1")
bad("examples/loads.lua", 23, {}, "give symbol=NAME, or from=ADDR and to=ADDR")
bad("examples/loads.lua", 23, { "from=main" }, "give symbol=NAME, or from=ADDR and to=ADDR")
never_named("examples/loads.lua", { "symbol=nope" }, "symbol=nope", "nope")
bad("examples/memsize.lua", 9, { "x=1" }, "option parsing failed: x=1 (known options: format)")
bad("examples/pagemap.lua", 8, { "page=x" }, "integer argument parsing failed: page=x")
bad("examples/pagemap.lua", 10, { "page=0" }, "page must be at least 1: page=0")
bad("examples/pagemap.lua", 10, { "page=-4096" }, "page must be at least 1: page=-4096")
bad("examples/syscount.lua", 11, { "errors=2" }, "boolean argument parsing failed: errors=2")
bad("examples/syscount.lua", 11, { "format=" }, "expected one of text, csv, json: format=")

return cases
