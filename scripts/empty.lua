-- empty: a translation hook that does nothing, to measure the cost of one.
-- A port of QEMU's tests/tcg/plugins/empty.c: it asks QEMU for every
-- block translation and adds no instrumentation. Like empty.c it prints
-- nothing and ignores its arguments; what it measures is the time QEMU
-- and luahost take to call an empty Lua function per translated block.
luahost.on_tb_translate(function() end)
