// TAP output for the node tests: ok() prints one "ok N - name" line (with
// the diagnostic as "# " lines on failure) and done() prints the plan and
// exits non-zero when any check failed. Each test program makes its own
// counter with createTap(); tests/run.sh counts the lines.
export function createTap() {
  let n = 0;
  let failed = 0;
  const ok = (cond, name, diag) => {
    n++;
    if (!cond) failed++;
    console.log(`${cond ? "ok" : "not ok"} ${n} - ${name}`);
    if (!cond && diag) console.log(String(diag).split("\n").map((l) => `# ${l}`).join("\n"));
  };
  const done = () => {
    console.log(`1..${n}`);
    process.exit(failed ? 1 : 0);
  };
  return { ok, done };
}
