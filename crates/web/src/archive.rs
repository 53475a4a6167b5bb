//! An agreement's export files in and out of a zip or a folder. What comes in is someone
//! else's: sizes and counts are bounded before anything is read whole, only plain files count,
//! and names are taken by their last part (a zip of the folder holds `folder/NAME`).

use std::io::{Read, Write};
use std::path::Path;

/// The most any one file of an export may hold (the agreement's own limits apply after).
const MAX_FILE: u64 = 16 * 1024 * 1024;
/// The most files an export may hold (text, manifest, allowed_signers, one signature per side).
const MAX_FILES: usize = 128;

pub type Files = Vec<(String, Vec<u8>)>;

/// The files as a zip (stored, not compressed: signatures and a text compress little).
pub fn zip(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o644);
    for (name, bytes) in files {
        out.start_file(name.as_str(), options).map_err(|e| e.to_string())?;
        out.write_all(bytes).map_err(|e| e.to_string())?;
    }
    out.finish().map(|c| c.into_inner()).map_err(|e| e.to_string())
}

/// The last part of a name inside an archive, if it is a plain file name.
fn base_name(name: &str) -> Option<&str> {
    let base = name.rsplit(['/', '\\']).next()?;
    (!base.is_empty() && base != "." && base != "..").then_some(base)
}

/// The files of a zip someone handed us.
pub fn unzip(bytes: &[u8]) -> Result<Files, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("this is not a zip file that can be read ({e})"))?;
    if archive.len() > MAX_FILES {
        return Err(format!("the zip holds {} files; an agreement has far fewer", archive.len()));
    }
    let mut files = Files::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(|e| format!("the zip is damaged ({e})"))?;
        if !file.is_file() {
            continue;
        }
        let Ok(full) = file.name().map(|n| n.into_owned()) else { continue };
        let Some(name) = base_name(&full).map(str::to_owned) else { continue };
        if file.size() > MAX_FILE {
            return Err(format!("{name} in the zip is larger than an agreement's file can be"));
        }
        let mut data = Vec::new();
        // Declared sizes can lie: read one byte past the limit at most.
        file.by_ref()
            .take(MAX_FILE + 1)
            .read_to_end(&mut data)
            .map_err(|e| format!("the zip is damaged ({e})"))?;
        if data.len() as u64 > MAX_FILE {
            return Err(format!("{name} in the zip is larger than an agreement's file can be"));
        }
        files.push((name, data));
    }
    Ok(files)
}

/// Writes the files into `dir`, which must be new or empty (nothing is overwritten).
pub fn write_folder(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), String> {
    if dir.as_os_str().is_empty() || !dir.is_absolute() {
        return Err("Give the folder's full path, starting with /.".into());
    }
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(format!(
            "{} already holds files; choose a new folder, so nothing is overwritten.",
            dir.display()
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("Cannot create {}: {e}.", dir.display()))?;
    for (name, bytes) in files {
        let Some(base) = base_name(name) else { continue };
        let path = dir.join(base);
        std::fs::write(&path, bytes).map_err(|e| format!("Cannot write {}: {e}.", path.display()))?;
    }
    Ok(())
}

/// Reads an export folder: only plain files (a link could point anywhere, a device or a FIFO
/// could read forever), each bounded.
pub fn read_folder(dir: &Path) -> Result<impl FnMut(&str) -> Option<Vec<u8>> + '_, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a folder on this computer.", dir.display()));
    }
    Ok(move |name: &str| {
        let path = dir.join(base_name(name)?);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() && m.len() <= MAX_FILE => {
                let mut bytes = Vec::new();
                std::fs::File::open(&path).ok()?.take(MAX_FILE + 1).read_to_end(&mut bytes).ok()?;
                (bytes.len() as u64 <= MAX_FILE).then_some(bytes)
            }
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_zip_round_trips_and_folders_are_flattened() {
        let files = vec![("manifest.json".to_owned(), b"{}".to_vec()), ("a.sig".to_owned(), b"sig".to_vec())];
        let bytes = zip(&files).unwrap();
        assert_eq!(unzip(&bytes).unwrap(), files);
        assert_eq!(base_name("agreement/manifest.json"), Some("manifest.json"));
        assert_eq!(base_name("../"), None);
        assert!(unzip(b"not a zip").is_err());
    }

    #[test]
    fn an_export_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        assert!(write_folder(dir.path(), &[("a".into(), b"a".to_vec())]).is_err());
        let fresh = dir.path().join("new");
        write_folder(&fresh, &[("a".into(), b"a".to_vec())]).unwrap();
        assert_eq!(read_folder(&fresh).unwrap()("a"), Some(b"a".to_vec()));
        assert!(write_folder(Path::new("relative"), &[]).is_err());
    }
}
