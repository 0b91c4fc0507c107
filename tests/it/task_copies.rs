//! One copy of an exported task at a time: an engine may run the same task twice at once (a
//! worker it took for lost, a second trigger, two exit handlers), and a holder may die. The
//! stage's side effects, its compensations and hooks still happen once, in a folder and in
//! an S3 bucket.

use crate::common::scratch;
use crate::export::S3Server;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const FLOW: &str = r#"activity book = sh("""echo "booked" >> booked.log; sleep 1; echo '{"ref": 1}'""")
activity charge = sh("""echo 'card declined' >&2; exit 3""")
activity unbook = sh("""cat > /dev/null; echo "unbooked" >> unbooked.log""")
flow Trip = {
  stage b with { compensate: unbook() } = book()
  stage c = from b | charge()
}
"#;

/// A flow's folder, its plan, and `wvflow stage` tasks on a state location.
struct Tasks {
    dir: PathBuf,
    state: String,
    env: Vec<(&'static str, String)>,
}

impl Tasks {
    fn new(name: &str, flow: &str, state: Option<(&str, &S3Server)>) -> Tasks {
        let dir = scratch(name, &[("flow.wv", flow)]);
        let (state, env) = match state {
            Some((prefix, server)) => (
                format!("s3://wvflow-state/{prefix}"),
                vec![
                    ("AWS_ACCESS_KEY_ID", "test".to_string()),
                    ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
                    ("AWS_REGION", "us-east-1".to_string()),
                    ("AWS_ENDPOINT_URL", server.endpoint.clone()),
                ],
            ),
            None => (dir.join("state").display().to_string(), Vec::new()),
        };
        let mut env = env;
        // The tasks' scratch folders, apart from every other test's.
        let temp = dir.join("tmp");
        std::fs::create_dir_all(&temp).unwrap();
        env.push(("TMPDIR", temp.display().to_string()));
        let tasks = Tasks { dir, state, env };
        let plan = tasks.output(&["plan", "flow.wv", "Trip", "--format", "json"]);
        std::fs::write(tasks.dir.join("plan.json"), plan.stdout).unwrap();
        let init = tasks.output(&tasks.args(&["stage", "init", "--plan", "plan.json"]));
        assert!(init.status.success(), "{init:?}");
        tasks
    }

    fn args<'a>(&'a self, verb: &[&'a str]) -> Vec<&'a str> {
        let mut all = verb.to_vec();
        all.extend(["--state", &self.state, "--run-id", "r1"]);
        all.extend(["--cwd", self.dir.to_str().unwrap()]);
        if !verb.contains(&"init") {
            all.extend(["--flow", "Trip"]);
        }
        all
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_wvflow"));
        command.args(args).current_dir(&self.dir);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn start(&self, verb: &[&str]) -> Child {
        self.command(&self.args(verb))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// The scratch folders of the task with process id `pid`.
    fn scratch_of(&self, pid: u32) -> Vec<PathBuf> {
        let prefix = format!("wvflow-task-{pid}-");
        std::fs::read_dir(self.dir.join("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .collect()
    }

    fn lines(&self, file: &str) -> usize {
        std::fs::read_to_string(self.dir.join(file)).map_or(0, |t| t.lines().count())
    }
}

/// Two copies of each task at once: both end as the one that ran ends, and the stage's
/// activity, its compensation and the run's end happen once.
fn two_copies_do_the_work_once(tasks: &Tasks) {
    let copies = [
        tasks.start(&["stage", "run", "b"]),
        tasks.start(&["stage", "run", "b"]),
    ];
    let ends: Vec<Output> = copies.map(|c| c.wait_with_output().unwrap()).into();
    for end in &ends {
        assert_eq!(end.status.code(), Some(0), "{end:?}");
    }
    assert_eq!(tasks.lines("booked.log"), 1, "the stage ran twice");
    let charged = tasks.output(&tasks.args(&["stage", "run", "c"]));
    assert_eq!(charged.status.code(), Some(98), "{charged:?}");
    let finishes = [
        tasks.start(&["stage", "finish"]),
        tasks.start(&["stage", "finish"]),
    ];
    let ends: Vec<Output> = finishes.map(|c| c.wait_with_output().unwrap()).into();
    let codes: Vec<Option<i32>> = ends.iter().map(|e| e.status.code()).collect();
    assert_eq!(codes[0], codes[1], "{ends:?}");
    assert_ne!(codes[0], Some(0), "the run failed: {ends:?}");
    assert_eq!(tasks.lines("unbooked.log"), 1, "compensated twice");
}

#[test]
fn two_copies_of_a_task_in_a_folder_do_its_work_once() {
    two_copies_do_the_work_once(&Tasks::new("task_copies_folder", FLOW, None));
}

#[test]
fn two_copies_of_a_task_on_s3_do_its_work_once() {
    let server = S3Server::start();
    two_copies_do_the_work_once(&Tasks::new(
        "task_copies_s3",
        FLOW,
        Some(("copies", &server)),
    ));
}

/// A copy killed with SIGKILL while it holds the stage leaves its lease and its scratch
/// folder behind: the next copy on this host sees its process gone, runs the stage at once
/// (not after the lease's 15 s), and removes the folder.
#[test]
fn a_copy_killed_while_it_runs_is_taken_over_at_once() {
    let flow = FLOW.replace(
        r#"echo "booked" >> booked.log; sleep 1;"#,
        r#"echo "booked" >> booked.log; if [ ! -f first ]; then touch first; exec sleep 30; fi;"#,
    );
    let tasks = Tasks::new("task_copies_killed", &flow, None);
    let mut first = tasks.start(&["stage", "run", "b"]);
    let started = Instant::now();
    while tasks.lines("booked.log") < 1 {
        assert!(started.elapsed() < Duration::from_secs(20), "never booked");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Its scratch folder (its upstream rows, its run database) is its own user's alone.
    let scratch = tasks.scratch_of(first.id());
    assert_eq!(scratch.len(), 1, "{scratch:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&scratch[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    first.kill().unwrap();
    let _ = first.wait();
    let taken_over = Instant::now();
    let second = tasks.output(&tasks.args(&["stage", "run", "b"]));
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    assert!(
        taken_over.elapsed() < Duration::from_secs(10),
        "waited {:?} for a dead copy",
        taken_over.elapsed()
    );
    assert_eq!(tasks.lines("booked.log"), 2);
    // The next task removed the dead one's scratch folder.
    assert!(tasks.scratch_of(first.id()).is_empty());
}

/// What a copy killed with SIGKILL left running (an activity's background child, which
/// outlives the task) is stopped by the copy that takes over.
#[test]
fn what_a_killed_copy_left_running_is_stopped_by_the_next() {
    let flow = FLOW.replace(
        r#"echo "booked" >> booked.log; sleep 1;"#,
        r#"echo "booked" >> booked.log; if [ ! -f first ]; then touch first; (sleep 60; echo late >> late.log) & echo $! > background.pid; exec sleep 30; fi;"#,
    );
    let tasks = Tasks::new("task_copies_left_running", &flow, None);
    let mut first = tasks.start(&["stage", "run", "b"]);
    let pid_file = tasks.dir.join("background.pid");
    let started = Instant::now();
    while std::fs::read_to_string(&pid_file).map_or(true, |t| t.trim().is_empty()) {
        assert!(started.elapsed() < Duration::from_secs(20), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let background: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Killed once the lease lists the attempt's group (the background child's), not after a
    // guessed delay: on a busy machine the renewal can come late.
    let group = process_group(background);
    let listed = Instant::now();
    while !lease_lists(&tasks.dir.join("state"), group) {
        assert!(
            listed.elapsed() < Duration::from_secs(20),
            "the lease never listed group {group}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    first.kill().unwrap();
    let _ = first.wait();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !matches!(
                stat.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().chars().next()),
                Some(Some('Z' | 'X'))
            )
        })
    };
    assert!(
        alive(background),
        "the background child should outlive the killed task"
    );
    let second = tasks.output(&tasks.args(&["stage", "run", "b"]));
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    let stopped = Instant::now();
    while alive(background) {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the killed copy's background child still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The process group of `pid`, from its `/proc` record (the field after its state and parent).
fn process_group(pid: u32) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// Whether a lease under the state folder `state` lists the process group `group`.
fn lease_lists(state: &std::path::Path, group: i64) -> bool {
    let Ok(entries) = std::fs::read_dir(state) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            return lease_lists(&path, group);
        }
        let in_leases = path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|n| n == "leases");
        in_leases
            && std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .is_some_and(|lease| {
                    lease["groups"]
                        .as_array()
                        .is_some_and(|groups| groups.iter().any(|g| g[0] == group))
                })
    })
}
