# coreutils and util-linux as scripts use them: timeout, nice, df, flock, sort and friends.
set -u
timeout 0.3 sleep 5
echo "timeout $?"
timeout -s KILL 0.2 sleep 5
echo "timeout KILL $?"
echo "nice $(nice -n 5 nice)"
df -P / >/dev/null && echo "df / ok"
df -P /tmp | awk 'NR == 2 { print ($2 > 0 ? "df /tmp has a size" : "df /tmp is empty") }'
(
    flock -n 9 || { echo "flock: first lock refused"; exit 1; }
    if flock -n /tmp/lock -c true; then echo "flock: a held lock was taken"; else echo "flock: held lock refused"; fi
) 9>/tmp/lock
flock -n /tmp/lock -c 'echo "flock: released with its holder"'
seq 1 1000 | sort -rn | head -3 | tr '\n' ' '
echo
printf 'b\na\nb\nc\nb\n' | sort | uniq -c | sort -rn | head -1 | tr -s ' '
seq 1 5000 > /tmp/n
echo "wc $(wc -l </tmp/n) $(stat -c %s /tmp/n) $(sha256sum </tmp/n | cut -c1-16)"
mkdir -p /tmp/d/e && cp /tmp/n /tmp/d/e/ && ln -s e/n /tmp/d/link
echo "find $(find /tmp/d | sort | tr '\n' ' ')"
echo "readlink $(readlink /tmp/d/link) $(realpath /tmp/d/link)"
echo "date $(date -u -d @86400 +%F) $(TZ=UTC date -d '2026-12-06 10:00' +%s)"
