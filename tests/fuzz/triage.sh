#!/bin/sh
# Sorts the artifacts a fuzz target left in DIR by where they fail:
#   triage.sh BINARY DIR
# Each crash-/leak-/timeout-/oom- input is run again (with a time limit)
# and blamed on the first stack frame outside libFuzzer, the sanitizers,
# libc and the allocator: libcnnviz (ours: exit status 1) or a shared
# library it uses (libhdf5, libpng ...: reported, not failed -- not ours
# to fix, and not instrumented).
bin=$1 dir=$2 ours=0 deps=0
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
skip='sanitizer|interceptor|fuzzer::|libc\.so|sysdeps|__asan|__ubsan|asan_|ubsan_|ld-linux|AlarmCallback|PrintStackTrace| in (malloc|calloc|realloc|free|strdup|strndup|aligned_alloc|posix_memalign) '
for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
	case $f in *.log) continue ;; esac
	[ -f "$f" ] || continue
	log=$f.log
	case $(basename "$f") in timeout-*) kind=hang ;; oom-*) kind=oom ;;
	leak-*) kind=leak ;; *) kind=crash ;; esac
	timeout 30 "$bin" -runs=1 -timeout=5 -rss_limit_mb=2560 "$f" >"$log" 2>&1
	frame=$(grep -E '^ +#[0-9]+ ' "$log" | grep -vE "$skip" | head -1)
	# UBSan without a stack trace still names the source line.
	[ -n "$frame" ] || frame=$(grep -E 'runtime error' "$log" | head -1)
	[ -n "$frame" ] || frame="(did not reproduce)"
	case $frame in
	*/lib/*.c*|*/tests/fuzz/*|lib/*.c*) who=libcnnviz; ours=$((ours + 1)) ;;
	*) who=$(echo "$frame" | sed -n 's/.*(\([^+]*\)+0x.*/\1/p' | xargs -r basename)
	   [ -n "$who" ] || who=unknown; deps=$((deps + 1)) ;;
	esac
	echo "  $kind in $who: $(basename "$f")"
	echo "      $(echo "$frame" | sed 's/^ *//; s/ (BuildId.*//' | cut -c1-150)"
done
echo "  $ours in libcnnviz, $deps in shared libraries"
[ "$ours" -eq 0 ]
