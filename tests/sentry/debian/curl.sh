# curl against a web server in the same sandbox (Python's http.server on loopback).
set -uo pipefail
mkdir -p /tmp/www/dir
seq 1 3000 > /tmp/www/dir/numbers
python3 -m http.server 8123 --bind 127.0.0.1 --directory /tmp/www >/dev/null 2>&1 &
server=$!
for _ in $(seq 1 600); do
    curl -sf -o /dev/null http://127.0.0.1:8123/ && break
    sleep 0.05
done
curl -sf http://127.0.0.1:8123/dir/numbers -o /tmp/got
echo "body $(wc -l </tmp/got) $(tail -1 /tmp/got)"
echo "missing $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8123/nothing)"
echo "head $(curl -sI http://127.0.0.1:8123/dir/numbers | head -1 | tr -d '\r')"
kill "$server"
wait "$server"
echo "server ended $?"
