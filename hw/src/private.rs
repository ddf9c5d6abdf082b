//! Files and directories only the server's user may read: pool data, superblocks and the
//! management service's state are created 0600 and their directories 0700, whatever the umask.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of data and metadata files.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the directories that hold them.
pub const DIR_MODE: u32 = 0o700;

/// Opens `path` for writing, created 0600 if absent (an existing file is made 0600 too).
pub fn open(path: &Path, truncate: bool) -> io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(truncate)
        .write(true)
        .mode(FILE_MODE)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// Writes `data` to `path` as a 0600 file (replacing its contents).
pub fn write(path: &Path, data: impl AsRef<[u8]>) -> io::Result<()> {
    open(path, true)?.write_all(data.as_ref())
}

/// Creates `dir` and its missing parents, each new one 0700; `dir` itself is made 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_dirs_are_private_whatever_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("a/b");
        create_dir(&sub).unwrap();
        let f = sub.join("f");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        write(&f, "secret").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(&sub), 0o700);
        assert_eq!(fs::read_to_string(&f).unwrap(), "secret");
    }
}
