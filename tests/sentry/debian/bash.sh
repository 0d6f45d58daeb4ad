# Bash features programs lean on: arrays, pipefail, traps, jobs, process substitution,
# /dev/stdin. Every line printed is compared with a native run.
set -uo pipefail
declare -a a=(one two three)
a+=(four)
echo "array ${#a[@]} ${a[2]} ${a[*]:1:2}"
declare -A m=([x]=1 [y]=2)
echo "assoc $((m[x] + m[y])) ${!m[*]}"
false | true
echo "pipefail $?"
set +o pipefail
false | true
echo "no pipefail $?"
set -o pipefail
trap 'echo "trapped USR1"' USR1
kill -USR1 $$
sleep 0.1 &
wait $!
echo "background job $?"
sleep 30 &
victim=$!
kill -TERM "$victim"
wait "$victim"
echo "killed job $?"
echo "diff lines $(diff <(printf 'a\nb\n') <(printf 'a\nc\n') | grep -c '^[<>]')"
mapfile -t lines < <(seq 3)
echo "mapfile ${#lines[@]} ${lines[2]}"
echo "via /dev/stdin $(echo piped | cat /dev/stdin)"
echo "to /dev/stderr" >/dev/stderr
twice() { local x=$1; echo $((x * 2)); }
echo "function $(twice 21) $(echo nested "$(echo deeper)")"
read -r first rest <<<"here string words"
echo "read $first/$rest"
trap 'echo "EXIT trap"' EXIT
