//! Static files, loaded into memory once at start and served from there.
//!
//! Rules:
//! - The event loop never touches the disk: [`StaticFiles::load`] reads the whole directory before the
//!   loop starts (bounded by [`MAX_FILES`] and [`MAX_TOTAL_BYTES`]), and each body is a shared `Rc<[u8]>`
//!   that responses queue by reference, never by copy.
//! - No request can reach outside the directory: a request only ever looks up a key in the table built at
//!   start, and that table holds only regular files whose real path (symlinks resolved) lies inside the
//!   directory. On top of that, [`normalize`] refuses what a traversal attempt looks like (`..` or `.`
//!   segments, percent-encoded slashes or backslashes, NUL and other control bytes, invalid escapes) with
//!   a 400, so attempts are visible in the log rather than quietly 404.
//! - Hidden files (a name starting with `.`) are not served.
//! - When the directory cannot be read (the binary started from elsewhere), a copy of the demo page built
//!   into the binary is served instead, so `/` always works.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::http::query::percent_decode;

/// Most files loaded from the static directory.
pub const MAX_FILES: usize = 10_000;
/// Most bytes loaded from the static directory, all files together.
pub const MAX_TOTAL_BYTES: u64 = 256 * 1024 * 1024;

/// One file, ready to send.
#[derive(Debug)]
pub struct StaticFile {
    pub body: Rc<[u8]>,
    pub content_type: &'static str,
}

/// The result of looking a request path up.
#[derive(Debug)]
pub enum Lookup<'a> {
    Found(&'a StaticFile),
    NotFound,
    /// The path is not acceptable; the text says why.
    Invalid(&'static str),
}

/// The table of files, keyed by URL path (`/index.html`, `/css/site.css`).
#[derive(Debug, Default)]
pub struct StaticFiles {
    files: HashMap<String, StaticFile>,
    total_bytes: u64,
    /// Files skipped while loading, and the first one's path and reason (one warning for all of them).
    skipped: usize,
    first_skipped: Option<String>,
}

impl StaticFiles {
    /// Loads every regular file under `dir`. Files that cannot be read, symlinks that point outside `dir`,
    /// and files past the limits are skipped with a warning; an unreadable `dir` is an error.
    pub fn load(dir: &Path) -> io::Result<StaticFiles> {
        let root = dir.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a directory"));
        }
        let mut files = StaticFiles::default();
        let mut pending: Vec<(PathBuf, String)> = vec![(root.clone(), String::new())];
        let mut visited_dirs = vec![root.clone()];
        while let Some((dir, url_prefix)) = pending.pop() {
            let mut entries: Vec<_> = fs::read_dir(&dir)?.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    files.skip(&entry.path(), "its name is not UTF-8");
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                let Ok(real) = entry.path().canonicalize() else {
                    files.skip(&entry.path(), "cannot resolve it");
                    continue;
                };
                if !real.starts_with(&root) {
                    files.skip(&entry.path(), "it points outside the static dir");
                    continue;
                }
                let url = format!("{url_prefix}/{name}");
                if real.is_dir() {
                    if !visited_dirs.contains(&real) {
                        visited_dirs.push(real.clone());
                        pending.push((real, url));
                    }
                } else if real.is_file() {
                    files.add_file(&real, url);
                }
            }
        }
        if let Some(first) = &files.first_skipped {
            // One line for all of them: a directory of 10,000 unreadable files must not flood the log.
            let more = files.skipped - 1;
            let others = if more > 0 {
                format!(" and {more} more (--log-level debug lists them)")
            } else {
                String::new()
            };
            log::warn!("static: skipped {}{others}", first);
        }
        Ok(files)
    }

    /// Notes a file left out, logged at debug; [`StaticFiles::load`] warns once for all of them.
    fn skip(&mut self, path: &Path, why: &str) {
        log::debug!("static: skipping {path:?}: {why}");
        self.skipped += 1;
        if self.first_skipped.is_none() {
            self.first_skipped = Some(format!("{path:?} ({why})"));
        }
    }

    /// The demo page (and its icon) built into the binary, for when no static directory can be read.
    pub fn builtin() -> StaticFiles {
        let mut files = StaticFiles::default();
        files.insert("/index.html".into(), include_bytes!("../static/index.html").as_slice());
        files.insert("/favicon.svg".into(), include_bytes!("../static/favicon.svg").as_slice());
        files
    }

    fn add_file(&mut self, path: &Path, url: String) {
        if self.files.len() >= MAX_FILES {
            self.skip(path, &format!("more than {MAX_FILES} files"));
            return;
        }
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(u64::MAX);
        if self.total_bytes.saturating_add(size) > MAX_TOTAL_BYTES {
            self.skip(path, &format!("over {MAX_TOTAL_BYTES} bytes in all"));
            return;
        }
        match fs::read(path) {
            Ok(bytes) => self.insert(url, &bytes),
            Err(e) => self.skip(path, &e.to_string()),
        }
    }

    fn insert(&mut self, url: String, bytes: &[u8]) {
        self.total_bytes += bytes.len() as u64;
        let content_type = content_type(&url);
        self.files.insert(url, StaticFile { body: Rc::from(bytes), content_type });
    }

    /// Number of files loaded.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when no file is loaded.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Total bytes loaded.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Finds the file for a request path (the target without its query). A path ending in `/` names that
    /// directory's `index.html`.
    pub fn lookup(&self, path: &str) -> Lookup<'_> {
        let mut key = match normalize(path) {
            Ok(key) => key,
            Err(why) => return Lookup::Invalid(why),
        };
        if key.ends_with('/') {
            key.push_str("index.html");
        }
        match self.files.get(&key) {
            Some(file) => Lookup::Found(file),
            None => Lookup::NotFound,
        }
    }
}

/// Turns a request path ([`crate::http::request::Request::path`], which has already dropped an
/// absolute-form `http://host`) into a table key: percent-decodes, and refuses anything that looks like
/// an attempt to leave the directory.
pub fn normalize(path: &str) -> Result<String, &'static str> {
    if !path.starts_with('/') {
        return Err("the path must start with /");
    }
    if path.to_ascii_lowercase().contains("%2f") {
        return Err("percent-encoded slash");
    }
    let decoded = percent_decode(path, false)?;
    if decoded.bytes().any(|b| b == b'\\' || b.is_ascii_control()) {
        return Err("backslash or control byte in the path");
    }
    if decoded.split('/').any(|segment| segment == ".." || segment == ".") {
        return Err("dot segment in the path");
    }
    Ok(decoded)
}

/// The `Content-Type` for a file name, by extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_accepts_plain_and_encoded_paths() {
        assert_eq!(normalize("/"), Ok("/".into()));
        assert_eq!(normalize("/a%20b.txt"), Ok("/a b.txt".into()));
        assert_eq!(normalize("/caf%C3%A9"), Ok("/café".into()));
        assert_eq!(normalize("/a..b/c...d"), Ok("/a..b/c...d".into()), "dots inside names are fine");
    }

    #[test]
    fn normalize_refuses_traversal_shapes() {
        for path in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/.%2e/x",
            "/a/./b",
            "/..",
            "/a%2fb",
            "/a%2F..%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a%00b",
            "/a%0ab",
            "/a%zz",
            "/a%4",
            "/%ff",
            "etc/passwd",
            "*",
        ] {
            assert!(normalize(path).is_err(), "{path} must be refused");
        }
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/A.SVG"), "image/svg+xml");
        assert_eq!(content_type("/noext"), "application/octet-stream");
    }

    #[test]
    fn builtin_serves_the_demo_page_at_the_root() {
        let files = StaticFiles::builtin();
        match files.lookup("/") {
            Lookup::Found(file) => {
                assert_eq!(file.content_type, "text/html; charset=utf-8");
                assert!(std::str::from_utf8(&file.body).unwrap().contains("EventSource"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(files.lookup("/missing"), Lookup::NotFound));
        assert!(matches!(files.lookup("/../x"), Lookup::Invalid(_)));
    }

    #[test]
    fn load_skips_hidden_files_and_symlinks_that_leave_the_directory() {
        let base = std::env::temp_dir().join(format!("mio-sse-static-{}", std::process::id()));
        let root = base.join("root");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("index.html"), "home").unwrap();
        fs::write(root.join("sub/page.css"), "css").unwrap();
        fs::write(root.join(".secret"), "hidden").unwrap();
        fs::write(base.join("outside.txt"), "outside").unwrap();
        std::os::unix::fs::symlink(base.join("outside.txt"), root.join("escape.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("index.html"), root.join("alias.html")).unwrap();
        std::os::unix::fs::symlink(&base, root.join("up")).unwrap();

        let files = StaticFiles::load(&root).unwrap();
        let _ = fs::remove_dir_all(&base);
        assert!(matches!(files.lookup("/"), Lookup::Found(f) if &*f.body == b"home"));
        assert!(
            matches!(files.lookup("/sub/page.css"), Lookup::Found(f) if f.content_type.starts_with("text/css"))
        );
        assert!(matches!(files.lookup("/alias.html"), Lookup::Found(_)), "a symlink inside is fine");
        assert!(matches!(files.lookup("/.secret"), Lookup::NotFound));
        assert!(matches!(files.lookup("/escape.txt"), Lookup::NotFound));
        assert!(matches!(files.lookup("/up/outside.txt"), Lookup::NotFound));
        assert_eq!(files.len(), 3);
    }

    #[test]
    fn skipped_files_are_counted_for_one_warning() {
        let dir = std::env::temp_dir().join(format!("mio-sse-static-skipped-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
        for i in 0..3 {
            std::os::unix::fs::symlink("/etc/hostname", dir.join(format!("out{i}"))).unwrap();
        }
        let files = StaticFiles::load(&dir).unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(files.len(), 1);
        assert_eq!(files.skipped, 3);
        assert!(files.first_skipped.as_deref().is_some_and(|f| f.contains("points outside")));
    }
}
