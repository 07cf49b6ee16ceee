//! Who is acting: the OS user of this process and its groups (SPEC §5: the approver of a
//! CLI decision is the OS user).

use nix::unistd::{getgroups, getuid, Group, User};

/// The user name of the current process, or `uid:<n>` when it has no passwd entry.
pub fn current_user() -> String {
    user_name(getuid().as_raw())
}

/// The name of user `uid` (`uid:<n>` when the password database has none).
pub fn user_name(uid: u32) -> String {
    let uid = nix::unistd::Uid::from_raw(uid);
    User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid:{uid}"), |u| u.name)
}

/// Names of the groups of the current process.
pub fn current_groups() -> Vec<String> {
    getgroups()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|gid| Group::from_gid(gid).ok().flatten().map(|g| g.name))
        .collect()
}
