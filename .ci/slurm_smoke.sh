#!/usr/bin/env bash
# CI step (after the tests): the cluster profile on a real single-node SLURM, end to end.
#
#   .ci/slurm_smoke.sh            (root; installs slurm-wlm munge slurmdbd mariadb-server when missing)
#
# 1. cluster/slurm_local.sh up: munge, MariaDB + slurmdbd, slurmctld, slurmd on localhost.
# 2. snakemake --profile slurm --configfile config/ci.yaml through it, into a fresh results dir.
# 3. While it runs: `scancel` one running job -> the driver sees CANCELLED and resubmits it
#    (profile: retries 2, squeue status command).
# 4. Once some jobs have finished: kill -9 the driver.  The safe resume the README describes:
#    scancel the killed driver's jobs (its SLURM run ID), `snakemake --unlock`, run again.  Checked:
#    a restart without --unlock is refused (locked), and nothing that had finished is redone
#    (mtimes of every finished output unchanged; the restart runs fewer jobs than the first run).
# 5. The restart reaches the report; figures: submissions (sacct), wall time.  Tear down.
# Bounded: every wait has a deadline; the whole step is killed after $LIMIT seconds (default 540).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LIMIT=${DIPBENCH_SLURM_SMOKE_LIMIT:-540}
WORK=$(mktemp -d /tmp/dipbench-slurm-smoke.XXXXXX)
RES=$WORK/results
LOG1=$WORK/driver1.log
LOG2=$WORK/driver2.log
# the profile as it is, plus a shorter first status query (the profile says 15 s) to keep CI short
SMK=(python -m snakemake --profile slurm --configfile config/ci.yaml --config "results=$RES"
     --slurm-init-seconds-before-status-checks 5)
T0=$SECONDS

say() { echo "slurm_smoke [$((SECONDS - T0))s]: $*"; }
fail() { echo "slurm_smoke FAILED: $*" >&2; for f in "$LOG1" "$LOG2"; do [ -f "$f" ] && { echo "--- tail $f" >&2; tail -40 "$f" >&2; }; done; exit 1; }
deadline() { [ $((SECONDS - T0)) -lt "$LIMIT" ] || fail "over the time limit of ${LIMIT}s"; }

DRIVER=""
cleanup() {
    [ -n "$DRIVER" ] && kill -9 "$DRIVER" 2>/dev/null || true
    cluster/slurm_local.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT

command -v sbatch >/dev/null && command -v slurmdbd >/dev/null || cluster/slurm_local.sh install >/dev/null
cluster/slurm_local.sh up
export SLURM_TIME_FORMAT=standard
export USER=${USER:-$(id -un)}  # the plugin guesses the account from sacctmgr for this user

# ------------------------------------------------------------------ run 1: scancel, then kill -9
say "run 1: ${SMK[*]}"
T_RUN1=$SECONDS
"${SMK[@]}" > "$LOG1" 2>&1 &
DRIVER=$!
RUN_ID=""
until [ -n "$RUN_ID" ]; do
    deadline; sleep 1
    kill -0 "$DRIVER" 2>/dev/null || fail "the driver exited before submitting"
    RUN_ID=$(sed -n 's/.*SLURM run ID: \([0-9a-f-]*\).*/\1/p' "$LOG1" | head -1)
done
say "SLURM run ID $RUN_ID"

# scancel the first job that has been running for a few seconds
VICTIM=""
until [ -n "$VICTIM" ]; do
    deadline; sleep 1
    VICTIM=$(squeue -h --name "$RUN_ID" -t R -o "%i %M" | awk '{split($2,t,":"); if (t[length(t)]+60*t[length(t)-1] >= 3) {print $1; exit}}')
done
COMMENT=$(squeue -h -j "$VICTIM" -o "%k")
say "scancel $VICTIM ($COMMENT)"
scancel "$VICTIM"
until grep -q "Trying to restart job" "$LOG1"; do
    deadline; sleep 1
    kill -0 "$DRIVER" 2>/dev/null || fail "the driver exited instead of retrying the cancelled job"
done
say "sacct: $(sacct -X -n -P -j "$VICTIM" --format=JobID,State)"
JOB_UUID=$(sed -n 's/.*Trying to restart job \([0-9a-f-]*\).*/\1/p' "$LOG1" | head -1)
grep -m1 "Trying to restart job" "$LOG1" | sed 's/^/  driver: /'
until [ "$(grep -c "Job $JOB_UUID has been submitted" "$LOG1")" -ge 2 ]; do deadline; sleep 1; done
RETRY=$(grep "Job $JOB_UUID has been submitted" "$LOG1" | tail -1 | sed -n 's/.*SLURM jobid \([0-9]*\).*/\1/p')
say "resubmitted as SLURM job $RETRY (attempt 2: memory and runtime doubled): $(squeue -h -j "$RETRY" -o "%T, memory %m, time limit %l" 2>/dev/null)"

# kill -9 the driver once at least 2 submissions have finished and another is running
until [ "$(sacct -X -n -P --name "$RUN_ID" --format=State | grep -c COMPLETED)" -ge 2 ] \
      && [ -n "$(squeue -h --name "$RUN_ID" -t R -o %i)" ]; do
    deadline; sleep 1
    kill -0 "$DRIVER" 2>/dev/null || fail "the driver ended before it could be killed mid-run"
done
sleep 6  # let the driver notice the finished ones (status interval 5 s)
kill -9 "$DRIVER"; wait "$DRIVER" 2>/dev/null || true; DRIVER=""; T_KILL=$SECONDS
say "killed the driver (SIGKILL); still queued/running: $(squeue -h --name "$RUN_ID" -o %i | tr '\n' ' ')"

# what had finished: every run output not marked incomplete by Snakemake
python - "$RES" > "$WORK/finished.txt" <<'EOF'
import base64, os, sys
from pathlib import Path
inc = Path(".snakemake/incomplete")
marked = {base64.b64decode(p.name).decode() for p in inc.iterdir()} if inc.exists() else set()
marked = {os.path.abspath(m) for m in marked}
for p in sorted(Path(sys.argv[1]).rglob("*")):
    if p.is_file() and p.suffix in (".npz", ".json", ".csv") and "logs" not in p.parts \
            and os.path.abspath(p) not in marked:
        print(f"{p} {p.stat().st_mtime_ns}")
EOF
N_FIN=$(wc -l < "$WORK/finished.txt")
[ "$N_FIN" -gt 0 ] || fail "nothing had finished before the kill"
say "$N_FIN finished outputs recorded before the restart"

# the safe resume: cancel what the dead driver left, unlock, run again
scancel --name "$RUN_ID"
until [ -z "$(squeue -h --name "$RUN_ID" -o %i)" ]; do deadline; sleep 1; done
if "${SMK[@]}" -n > "$WORK/locked.log" 2>&1 && ! grep -q "locked" "$WORK/locked.log"; then
    fail "a restart after kill -9 was not refused as locked"
fi
grep -m1 "cannot be locked\|is locked" "$WORK/locked.log" | sed 's/^/  restart without --unlock: /' || true
python -m snakemake --profile slurm --configfile config/ci.yaml --config "results=$RES" --unlock > /dev/null 2>&1

# ------------------------------------------------------------------ run 2: to the report
say "run 2 (restart)"
T_RUN2=$SECONDS
"${SMK[@]}" > "$LOG2" 2>&1 &
DRIVER=$!
while kill -0 "$DRIVER" 2>/dev/null; do deadline; sleep 2; done
wait "$DRIVER" || fail "the restarted run failed"
DRIVER=""; T_END=$SECONDS
[ -s "$RES/report/index.md" ] && [ -s "$RES/leaderboard.csv" ] || fail "no report after the restart"

python - "$WORK/finished.txt" <<'EOF' || fail "a finished output was re-made by the restart"
import os, sys
bad = [l.split()[0] for l in open(sys.argv[1]) if os.stat(l.split()[0]).st_mtime_ns != int(l.split()[1])]
print(f"  {sum(1 for _ in open(sys.argv[1]))} finished outputs before the kill, {len(bad)} re-made after the restart")
for b in bad:
    print("  re-made:", b)
sys.exit(1 if bad else 0)
EOF
jobs_total() { sed -n 's/^total[[:space:]]*\([0-9]*\).*/\1/p' "$1" | head -1; }
J1=$(jobs_total "$LOG1"); J2=$(jobs_total "$LOG2")
say "jobs planned: run 1 $J1, restart $J2"
[ -n "$J1" ] && [ -n "$J2" ] && [ "$J2" -lt "$J1" ] || fail "the restart did not plan fewer jobs than the first run"
RUN_ID2=$(sed -n 's/.*SLURM run ID: \([0-9a-f-]*\).*/\1/p' "$LOG2" | head -1)
N1=$(sacct -X -n -P --name "$RUN_ID" --format=JobID | wc -l)
N2=$(sacct -X -n -P --name "$RUN_ID2" --format=JobID | wc -l)
say "done: $N1 submissions by run 1 (killed), $N2 by the restart; wall: run 1 $((T_KILL - T_RUN1)) s until the kill, restart $((T_END - T_RUN2)) s, whole step $((SECONDS - T0)) s incl. SLURM up/down"
sacct -X -P --format=JobID,Comment%60,State,Elapsed,AllocCPUS,ReqMem | sed 's/^/  /'
[ "$(sacct -X -n -P -j "$RETRY" --format=State)" = COMPLETED ] || say "note: the retry $RETRY ended $(sacct -X -n -P -j "$RETRY" --format=State) (cancelled with the killed run, re-made by the restart)"
