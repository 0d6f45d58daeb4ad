# git: a repository made, committed to, branched, merged, tagged and packed. The dates are
# fixed, so the commit ids themselves are compared with the native run's.
set -euo pipefail
export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
export GIT_CONFIG_NOSYSTEM=1 HOME=/tmp
cd /tmp
git init -q -b main repo
cd repo
git config user.name Ringfence
git config user.email ringfence@example.org
seq 1 100 > numbers
echo one > a
git add a numbers
git commit -qm first
echo two >> a
git commit -qam second
git checkout -qb feature
echo three >> a
sed -i 's/^50$/fifty/' numbers
git commit -qam third
git checkout -q main
git merge -q --no-edit feature
git tag v1
echo "log $(git log --format=%s | tr '\n' ' ')"
echo "head $(git rev-parse HEAD)"
echo "describe $(git describe --tags)"
echo "diff $(git diff --stat HEAD~2 | tail -1)"
echo "grep $(git grep -n fifty | tr '\n' ' ')"
echo "status [$(git status --porcelain)]"
git gc -q
echo "fsck $(git fsck --no-progress 2>&1 | wc -l) packs $(ls .git/objects/pack/*.pack | wc -l)"
git clone -q /tmp/repo /tmp/clone
echo "clone $(git -C /tmp/clone rev-parse HEAD) $(cat /tmp/clone/a | tr '\n' ' ')"
