//! A private PostgreSQL cluster on loopback, for the cluster tests and the
//! benchmarks: Debian's server programs (`initdb`, `pg_ctl`), a cluster
//! copied from one made by `initdb` once and kept, a free port on
//! 127.0.0.1, trust authentication, its socket in its own temporary
//! directory, and a `wasmrpc` database. As root (PostgreSQL refuses to run
//! as root) every program runs as the `postgres` user Debian's package
//! creates, via `runuser -u postgres --`. Stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// How long one of PostgreSQL's programs may run.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory of PostgreSQL's server programs (`initdb`, `pg_ctl`):
/// `WASMRPC_PG_BIN`, else the newest Debian `/usr/lib/postgresql/N/bin`,
/// else `pg_config --bindir`; an error when none has `initdb`.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("WASMRPC_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    match Command::new("pg_config").arg("--bindir").output() {
        Ok(out) if out.status.success() => {
            let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if bin.join("initdb").exists() {
                return Ok(bin);
            }
            bail!("PostgreSQL's server programs are not installed (no initdb in {})", bin.display())
        }
        _ => bail!("PostgreSQL is not installed (`make cluster-deps` installs Debian's postgresql package)"),
    }
}

/// A free port on 127.0.0.1 (bound and released: the process that uses it
/// binds it again right after).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A private PostgreSQL cluster; stopped (immediately) and removed when dropped.
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    /// Starts a fresh cluster with a `wasmrpc` database. `templates` is a
    /// directory where the cluster `initdb` makes is kept for the next
    /// starts (initdb takes seconds; a copy, a moment).
    pub fn start(templates: &Path) -> anyhow::Result<Postgres> {
        let bin = bin_dir()?;
        let dir = tempfile::tempdir().context("a temporary directory for PostgreSQL")?;
        // As root, run it as `postgres`, in a directory it owns.
        let as_postgres = running_as_root();
        if as_postgres {
            let status = Command::new("chown").arg("postgres:postgres").arg(dir.path()).status();
            if !status.is_ok_and(|s| s.success()) {
                bail!("chown postgres {} failed (is there a postgres user?)", dir.path().display());
            }
        }
        let pg = Postgres { bin, dir, port: free_port()?, as_postgres };
        let template = pg.template(templates)?;
        copy(&template, Path::new(&pg.data()))?;
        pg.start_again()?;
        pg.run("createdb", &["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "postgres", "wasmrpc"])?;
        Ok(pg)
    }

    /// A fresh cluster's data directory, made by `initdb` once and kept in
    /// `templates` (owned by `postgres` when run as root, as PostgreSQL wants).
    fn template(&self, templates: &Path) -> anyhow::Result<PathBuf> {
        let version = self.bin.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
        let template = templates.join(format!(
            "postgres-template-{}-{}",
            version.unwrap_or_default(),
            if self.as_postgres { "postgres" } else { "user" }
        ));
        if template.join("PG_VERSION").exists() {
            return Ok(template);
        }
        let made = self.dir.path().join("template");
        self.run(
            "initdb",
            &[
                "-D",
                &made.display().to_string(),
                "--auth=trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )?;
        // Made whole under a temporary name, then renamed: a process starting
        // a cluster at the same time sees all of it or none.
        let partial = template.with_extension(format!("partial-{}", std::process::id()));
        std::fs::create_dir_all(templates).with_context(|| format!("creating {}", templates.display()))?;
        copy(&made, &partial)?;
        if std::fs::rename(&partial, &template).is_err() {
            let _ = std::fs::remove_dir_all(&partial);
        }
        let _ = std::fs::remove_dir_all(&made);
        Ok(template)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of its `wasmrpc` database, for `wasmrpc serve --registry`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/wasmrpc", self.port)
    }

    /// The postmaster's process id (from `postmaster.pid`), while it runs.
    pub fn pid(&self) -> anyhow::Result<u32> {
        let file = Path::new(&self.data()).join("postmaster.pid");
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        text.lines().next().and_then(|l| l.trim().parse().ok()).context("an unexpected postmaster.pid")
    }

    /// A command running PostgreSQL's `program` (as `postgres` when root).
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.current_dir(self.dir.path());
        command
    }

    /// Runs PostgreSQL's `program` with `args` and insists it succeeds
    /// within a minute; the error says what it and the server printed.
    pub fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let mut command = self.command(program);
        command.args(args);
        let out = output_within(command, PROGRAM_TIMEOUT)?;
        if !out.status.success() {
            bail!(
                "{program} {args:?} failed ({})\n{}{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Starts the server (again) and waits until it accepts connections:
    /// on loopback only, trust auth, its socket in its own directory, no
    /// fsync (a crash of PostgreSQL loses nothing; one of the machine would).
    pub fn start_again(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "-t", "30", "start"])
    }

    /// Stops the server (fast: open connections are cut) and waits.
    pub fn stop(&self) -> anyhow::Result<()> {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "-t", "30", "stop"])
    }

    /// Crashes the server: `pg_ctl stop -m immediate` quits every process
    /// at once, without a checkpoint, so the next [`Postgres::start_again`]
    /// recovers from the WAL (a crash of PostgreSQL, not of the machine:
    /// with fsync off, what it wrote stays in the kernel's cache).
    pub fn crash(&self) -> anyhow::Result<()> {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "-t", "30", "stop"])
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut command = self.command("pg_ctl");
        command.args(["-D", &self.data(), "-m", "immediate", "-w", "-t", "30", "stop"]);
        let _ = output_within(command, PROGRAM_TIMEOUT);
    }
}

/// `cp -a from to` (ownership kept: a template made by `postgres`).
fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    let out = output_within(
        {
            let mut c = Command::new("cp");
            c.arg("-a").arg(from).arg(to);
            c
        },
        PROGRAM_TIMEOUT,
    )?;
    if !out.status.success() {
        bail!("cannot copy {} to {}: {}", from.display(), to.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Runs `command` with its output in temporary files, at most `timeout`:
/// one that runs longer is killed and reported. Files, not pipes: `pg_ctl
/// start` leaves the server running with the pipes it was given.
fn output_within(mut command: Command, timeout: Duration) -> anyhow::Result<Output> {
    let (mut stdout, mut stderr) = (tempfile::tempfile()?, tempfile::tempfile()?);
    command.stdin(Stdio::null()).stdout(stdout.try_clone()?).stderr(stderr.try_clone()?);
    let mut child = command.spawn().with_context(|| format!("cannot run {command:?}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{command:?} still ran after {timeout:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |file: &mut std::fs::File| -> std::io::Result<Vec<u8>> {
        use std::io::{Read as _, Seek as _};
        file.rewind()?;
        let mut all = Vec::new();
        file.read_to_end(&mut all)?;
        Ok(all)
    };
    Ok(Output { status, stdout: read(&mut stdout)?, stderr: read(&mut stderr)? })
}
