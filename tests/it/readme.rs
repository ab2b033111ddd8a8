//! Every command block of the README, run as written: in order, in one bash, from a
//! directory laid out like the top of a clone. Each command must exit 0, except one that
//! a `# refused` comment announces, which must fail; a `#   ... TEXT ...` comment after a
//! command says TEXT is in its output.
//!
//! What stands in for what a user has (the only changes to the text):
//! - `cargo run --release --` is the binary these tests built, and `target/release/bonded`
//!   in the scratch directory is that binary, so `cargo build --release && export
//!   PATH=$PWD/target/release:$PATH` finds it (`cargo build --release` itself is skipped);
//! - `cargo test` is skipped (it is what runs this);
//! - a `serve` in the foreground (a user's second terminal) runs until it listens, then
//!   gets SIGTERM and must exit 0;
//! - `keys-example/` is the repository's.
//!
//! The blocks name 127.0.0.1:5000, so they run in a network namespace of their own when
//! the machine allows one (`unshare -rn`): a registry a developer has on port 5000 does
//! not get in the way. Without one they run on the machine's loopback.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One command of a block and what is expected of it.
#[derive(Debug)]
struct Step {
    block: usize,
    text: String,
    refused: bool,
    says: Vec<String>,
}

/// The commands of every ```sh block of `markdown`, in order.
fn steps(markdown: &str) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut block = 0;
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```sh" {
            continue;
        }
        block += 1;
        let mut refused = false;
        let mut current: Option<String> = None;
        let mut heredoc: Option<String> = None;
        for line in lines.by_ref() {
            if heredoc.is_none() && line.trim() == "```" {
                break;
            }
            if let Some(end) = &heredoc {
                let text = current.as_mut().expect("a heredoc is part of a command");
                text.push('\n');
                text.push_str(line);
                if line == end {
                    heredoc = None;
                    out.push(step(block, current.take().unwrap(), &mut refused));
                }
                continue;
            }
            if let Some(text) = current.as_mut() {
                text.push('\n');
                text.push_str(line);
            } else {
                let trimmed = line.trim_start();
                if trimmed.is_empty() {
                    continue;
                }
                if let Some(comment) = trimmed.strip_prefix('#') {
                    let comment = comment.trim();
                    if comment.starts_with("refused") {
                        refused = true;
                    } else if let Some(quote) = comment.strip_prefix("... ") {
                        let quote = quote.trim_end_matches("...").trim();
                        out.last_mut()
                            .expect("a quoted output follows a command")
                            .says
                            .push(quote.to_string());
                    }
                    continue;
                }
                current = Some(line.to_string());
            }
            let text = current.as_ref().unwrap();
            let last = text.lines().last().unwrap_or_default();
            if let Some(pos) = last.find("<<'") {
                let end = last[pos + 3..].split('\'').next().unwrap_or_default();
                heredoc = Some(end.to_string());
            } else if !last.trim_end().ends_with('\\') {
                out.push(step(block, current.take().unwrap(), &mut refused));
            }
        }
        assert!(current.is_none(), "block {block} ends inside a command");
    }
    out
}

fn step(block: usize, text: String, refused: &mut bool) -> Step {
    Step {
        block,
        text,
        refused: std::mem::take(refused),
        says: Vec::new(),
    }
}

/// The command as the harness runs it (see the module's list of stand-ins); `None` to skip.
fn as_run(text: &str) -> Option<String> {
    let text = text.replace("cargo run --release -- ", "bonded ");
    let text = text.replace("cargo build --release && ", "");
    if text.trim_start().starts_with("cargo test") {
        return None;
    }
    let code = text.split(" #").next().unwrap_or_default();
    let one_line = text.replace("\\\n", " ");
    if code.trim_start().starts_with("bonded serve") && !one_line.contains('&') {
        let args = one_line.split(" #").next().unwrap_or_default();
        return Some(format!("__serve_briefly {args}"));
    }
    Some(text)
}

const PRELUDE: &str = r#"
# A foreground server: until it listens on 127.0.0.1:5000 (a minute at most: a loaded
# two-core machine can take that long), then SIGTERM; its exit status.
__serve_briefly() {
    "$@" &
    local pid=$! i
    for i in $(seq 600); do
        (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
}
"#;

fn script(steps: &[(usize, String)], results: &Path) -> String {
    let mut s = String::from(PRELUDE);
    for (i, text) in steps {
        s.push_str(&format!(
            "{{\n{text}\n}} > '{dir}/{i}.out' 2>&1\necho $? > '{dir}/{i}.rc'\n",
            dir = results.display()
        ));
    }
    // What the README leaves running is a defect of the README; stopped here either way.
    s.push_str(&format!(
        "jobs -p > '{}/left-running'\nkill $(jobs -p) 2>/dev/null\nwait\n",
        results.display()
    ));
    s
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `bash SCRIPT` in a network namespace of its own if the machine allows it.
fn bash(script: &Path, dir: &Path) -> Command {
    let isolated = Command::new("unshare")
        .args(["-rn", "sh", "-c", "ip link set lo up"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if isolated {
        let mut c = Command::new("unshare");
        c.args(["-rn", "sh", "-c", "ip link set lo up && exec bash \"$0\""])
            .arg(script);
        c
    } else {
        assert!(
            std::net::TcpListener::bind("127.0.0.1:5000").is_ok(),
            "127.0.0.1:5000 is in use and this machine gives no network namespace: the README's \
             commands name that address; stop what listens there"
        );
        let mut c = Command::new("bash");
        c.arg(script);
        c
    };
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .env("XDG_RUNTIME_DIR", dir)
        .env("REGISTRY_AUTH_FILE", dir.join("auth.json"))
        .env("SHELL", "/bin/bash");
    for (k, _) in std::env::vars() {
        if k.starts_with("BONDED_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn the_readme_blocks_parse_into_commands_with_their_expectations() {
    let md = "text\n```sh\nfirst --a \\\n    --b   # note\n# refused: no\nsecond\n#   ... it says this ...\ncat > f <<'EOF'\n{\"x\": 1}\nEOF\n```\n```text\nnot run\n```\n```sh\nthird & x=$!; sleep 1\n```\n";
    let s = steps(md);
    let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "first --a \\\n    --b   # note",
            "second",
            "cat > f <<'EOF'\n{\"x\": 1}\nEOF",
            "third & x=$!; sleep 1"
        ]
    );
    assert_eq!(
        s.iter().map(|s| (s.block, s.refused)).collect::<Vec<_>>(),
        [(1, false), (1, true), (1, false), (2, false)]
    );
    assert_eq!(s[1].says, ["it says this"]);
    assert_eq!(
        as_run("cargo run --release -- serve --x \\\n  --y  # a comment").unwrap(),
        "__serve_briefly bonded serve --x    --y "
    );
    assert_eq!(
        as_run("bonded serve & r=$!").unwrap(),
        "bonded serve & r=$!"
    );
    assert!(as_run("cargo test   # all").is_none());
}

#[test]
fn every_readme_block_runs_as_written() {
    for tool in ["skopeo", "umoci", "curl", "openssl"] {
        assert!(
            have(tool, "--version") || have(tool, "version"),
            "the README uses {tool}: install it (see the README's first lines)"
        );
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let all = steps(&readme);
    assert!(
        all.len() > 10,
        "only {} commands found: the parser lost its way",
        all.len()
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clone");
    let results = tmp.path().join("results");
    std::fs::create_dir_all(dir.join("target/release")).unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(&results).unwrap();
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_bonded"));
    std::os::unix::fs::symlink(&binary, dir.join("target/release/bonded")).unwrap();
    std::os::unix::fs::symlink(root.join("keys-example"), dir.join("keys-example")).unwrap();
    // Before the quick start puts target/release on PATH, the first block runs
    // `cargo run`, which stands for the same binary.
    std::os::unix::fs::symlink(&binary, dir.join("bin/bonded")).unwrap();

    let run: Vec<(usize, String)> = all
        .iter()
        .enumerate()
        .filter_map(|(i, s)| as_run(&s.text).map(|t| (i, t)))
        .collect();
    let file = tmp.path().join("readme.sh");
    std::fs::write(&file, script(&run, &results)).unwrap();
    let o = bash(&file, &dir).output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr).into_owned();

    let mut failures = Vec::new();
    for (i, _) in &run {
        let s = &all[*i];
        let rc = std::fs::read_to_string(results.join(format!("{i}.rc")))
            .map(|t| t.trim().to_string())
            .unwrap_or_else(|_| "(did not run)".into());
        let output = std::fs::read_to_string(results.join(format!("{i}.out"))).unwrap_or_default();
        let ok = if s.refused { rc != "0" } else { rc == "0" };
        let missing: Vec<&String> = s.says.iter().filter(|q| !output.contains(*q)).collect();
        if !ok || !missing.is_empty() {
            failures.push(format!(
                "block {}: `{}` exited {rc}{}{}\n--- output ---\n{output}",
                s.block,
                s.text,
                if s.refused { " (it should fail)" } else { "" },
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; its output lacks {missing:?}")
                },
            ));
        }
    }
    let left = std::fs::read_to_string(results.join("left-running")).unwrap_or_default();
    if !left.trim().is_empty() {
        failures.push(format!(
            "the README leaves processes running: {}",
            left.trim()
        ));
    }
    assert!(
        failures.is_empty(),
        "{}\n(bash: {log})",
        failures.join("\n\n")
    );
}
