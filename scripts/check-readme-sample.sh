#!/usr/bin/env sh
# Fails if the first ```cpp block of README ($1) differs from the source file ($2).
awk '/^```cpp$/ { on = 1; n++; next } /^```$/ { on = 0 } on && n == 1' "$1" | diff - "$2"
