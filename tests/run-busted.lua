-- The busted command, run by the Lua the suite means: tests/meson.build
-- runs `lua5.4 tests/run-busted.lua ARGS...` for every spec. Debian's
-- /usr/bin/busted is these same lines behind "#!/usr/bin/env lua", which
-- is whatever /usr/bin/lua is: Lua 5.1 once lua-check is installed.
require("busted.runner")({ standalone = false })
