//! Files and directories only their owner may read: data directories
//! (0700), and files holding case data or table material (0600).

use std::fs::File;
use std::path::Path;

/// Creates `dir` and any missing parents, mode 0700 for those it creates;
/// an existing directory is fine.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates `path`, or empties it if it exists; a new file gets mode 0600.
pub fn create_file(path: &Path) -> std::io::Result<File> {
    private().write(true).truncate(true).open(path)
}

/// Opens `path` for reading and writing, creating it (mode 0600) if it
/// does not exist; an existing file keeps its contents.
pub fn open_file(path: &Path) -> std::io::Result<File> {
    private().read(true).write(true).truncate(false).open(path)
}

/// Options that create a missing file with mode 0600.
fn private() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}
