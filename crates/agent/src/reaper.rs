//! The supervisor reaps what it starts. The agent runs in a session of its
//! own and may leave descendants behind (a background job, a tool it ran);
//! once their parent exits, the kernel hands them to the nearest "child
//! subreaper", else to PID 1, which in a container or a sandbox may never
//! wait for them, and they stay as zombies. The supervisor makes itself the
//! subreaper of everything below it and waits for all of it before exiting.

use std::time::Duration;

/// Makes this process the reaper of its orphaned descendants (Linux
/// `PR_SET_CHILD_SUBREAPER`); a no-op, logged, where that fails.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag of this process.
    let result = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if result != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot become the child subreaper; orphans of the agent go to PID 1");
    }
}

/// Waits for every child of this process, for at most `limit`; the number
/// reaped. Call it only once the agent's own exit was collected: it waits
/// for any child, and would take the agent's exit status otherwise.
pub async fn reap_children(limit: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    let mut reaped = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG writes only to `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            reaped += 1;
            continue;
        }
        // -1: no children left (ECHILD) or an error; 0: children are still running.
        if pid < 0 || tokio::time::Instant::now() >= deadline {
            if pid == 0 {
                tracing::warn!(reaped, "descendants of the agent still run after the grace period");
            }
            return reaped;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
