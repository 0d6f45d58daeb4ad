# tar and xz: a tree archived, compressed, checked, listed and unpacked elsewhere intact.
set -euo pipefail
mkdir -p /tmp/t/src/sub/deeper /tmp/t/out
cd /tmp/t
seq 1 20000 > src/numbers
head -c 300000 /usr/bin/tar > src/sub/binary
echo small > src/sub/deeper/small
ln -s ../numbers src/sub/link
chmod 0750 src/sub/deeper
tar -cJf tree.tar.xz src
xz -t tree.tar.xz && echo "xz test ok"
echo "list $(tar -tJf tree.tar.xz | sort | tr '\n' ' ')"
tar -xJf tree.tar.xz -C out
diff -r src out/src && echo "unpacked identical"
echo "mode $(stat -c %a out/src/sub/deeper) link $(readlink out/src/sub/link)"
xz -9 -k src/numbers
echo "xz round trip $(xz -dc src/numbers.xz | sha256sum | cut -c1-16) $(sha256sum < src/numbers | cut -c1-16)"
