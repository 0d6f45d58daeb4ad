# make and gcc: a program of two objects built in parallel, rebuilt only when a source changes.
set -euo pipefail
mkdir -p /tmp/m
cd /tmp/m
echo 'int add(int a, int b) { return a + b; }' > add.c
printf '#include <stdio.h>\nint add(int, int);\nint main(void) { printf("sum %%d\\n", add(20, 22)); return 0; }\n' > main.c
printf 'prog: add.o main.o\n\tgcc -o $@ $^\n%%.o: %%.c\n\tgcc -O2 -Wall -c $<\n' > Makefile
make -s -j2
./prog
make -q && echo "up to date"
# The build's files made older, so the edited source is newer without waiting a second.
touch -d '2020-01-01' add.o prog
echo 'int add(int a, int b) { return a * b; }' > add.c
echo "rebuilt: $(make -j2 | grep -c gcc) commands"
./prog
echo 'int main(void) { return missing(); }' > broken.c
if gcc -Werror -c broken.c 2>/dev/null; then echo "broken compiled"; else echo "broken refused"; fi
