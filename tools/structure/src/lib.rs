//! structure — checks of maslow's code structure that a reviewer would
//! otherwise do by eye, run as `cargo test -p structure` (and so by the
//! README's test command):
//!
//! - [`function_lengths`]: how long every function of a source file is, so
//!   the firmware can be held to functions a reader keeps in their head;
//! - [`ModuleGraph`]: which modules of a crate use which others, through
//!   `crate::`, `super::` and `self::` paths, and the import circles among
//!   them;
//! - [`issue_mentions`]: text that points at the project's issue tracker
//!   ("issue 7") instead of saying what it means;
//! - [`dependency_path`]: whether one workspace package reaches another in
//!   the resolved dependency graph (normal, dev or build dependencies).
//!
//! Reads files only; writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Problems reading what a check needs.
#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: does not parse as Rust: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Lock(String),
}

/// Every `.rs` file below `dir`, sorted.
pub fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, StructureError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| StructureError::Read {
            path: d.clone(),
            source,
        })?;
        for e in entries {
            let e = e.map_err(|source| StructureError::Read {
                path: d.clone(),
                source,
            })?;
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn parse_file(path: &Path) -> Result<syn::File, StructureError> {
    let text = std::fs::read_to_string(path).map_err(|source| StructureError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_text(path, &text)
}

fn parse_text(path: &Path, text: &str) -> Result<syn::File, StructureError> {
    syn::parse_file(text).map_err(|e| StructureError::Parse {
        path: path.to_path_buf(),
        line: e.span().start().line,
        message: e.to_string(),
    })
}

// ---------------------------------------------------------------------------
// Function lengths

/// One function (free, associated or nested, tests included) and its
/// length from the `fn` keyword to its closing brace, in lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionLength {
    pub name: String,
    /// Line of the `fn` keyword (1-based).
    pub line: usize,
    pub lines: usize,
}

/// The length of every function with a body in `text`.
pub fn function_lengths(path: &Path, text: &str) -> Result<Vec<FunctionLength>, StructureError> {
    #[derive(Default)]
    struct Lengths(Vec<FunctionLength>);
    impl Lengths {
        fn push(&mut self, sig: &syn::Signature, block: &syn::Block) {
            let line = sig.fn_token.span.start().line;
            let end = block.brace_token.span.close().end().line;
            self.0.push(FunctionLength {
                name: sig.ident.to_string(),
                line,
                lines: end + 1 - line,
            });
        }
    }
    impl<'ast> Visit<'ast> for Lengths {
        fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
            self.push(&f.sig, &f.block);
            syn::visit::visit_item_fn(self, f);
        }
        fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
            self.push(&f.sig, &f.block);
            syn::visit::visit_impl_item_fn(self, f);
        }
        fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
            if let Some(block) = &f.default {
                self.push(&f.sig, block);
            }
            syn::visit::visit_trait_item_fn(self, f);
        }
    }
    let file = parse_text(path, text)?;
    let mut v = Lengths::default();
    v.visit_file(&file);
    Ok(v.0)
}

// ---------------------------------------------------------------------------
// Module graph

/// The modules of one crate (by path from the crate root: `""` is the
/// root, `"scenario::world"` a module) and, for each, the modules it
/// refers to through `crate::`, `super::` and `self::` paths outside
/// `#[cfg(test)]` items. A path is charged to the longest module prefix it
/// names. Relative paths (`child::x`, a re-export's own path) are not
/// followed: a module reaching into its own children is the usual facade
/// and not counted.
#[derive(Debug, Clone, Default)]
pub struct ModuleGraph {
    pub uses: BTreeMap<String, BTreeSet<String>>,
}

impl ModuleGraph {
    /// Reads every `.rs` file below `src` (a crate's source root; `bin/`
    /// is left out: binaries are crates of their own).
    pub fn of_crate(src: &Path) -> Result<ModuleGraph, StructureError> {
        let files: Vec<(String, PathBuf)> = rust_files(src)?
            .into_iter()
            .filter_map(|p| {
                let rel = p.strip_prefix(src).ok()?.with_extension("");
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.first().is_some_and(|f| f == "bin") {
                    return None;
                }
                let mut parts = parts;
                if parts
                    .last()
                    .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
                {
                    parts.pop();
                }
                Some((parts.join("::"), p))
            })
            .collect();
        let mut texts = Vec::new();
        for (name, path) in files {
            texts.push((name, path.clone(), parse_file(&path)?));
        }
        let modules: BTreeSet<String> = texts.iter().map(|(n, _, _)| n.clone()).collect();
        let mut graph = ModuleGraph::default();
        for (name, _, file) in &texts {
            let mut refs = References::default();
            for item in &file.items {
                if !is_cfg_test(item_attrs(item)) {
                    refs.visit_item(item);
                }
            }
            let targets = refs
                .paths
                .iter()
                .filter_map(|p| resolve(name, p, &modules))
                .filter(|t| t != name)
                .collect();
            graph.uses.insert(name.clone(), targets);
        }
        Ok(graph)
    }

    /// Every import circle: the strongly connected components of more than
    /// one module, each sorted, in a stable order.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        Tarjan::new(self).run()
    }
}

/// Paths seen in an item: `use` trees (flattened to their full paths) and
/// every path in expressions, types and patterns.
#[derive(Default)]
struct References {
    paths: Vec<Vec<String>>,
}

impl References {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut full = prefix.clone();
                full.push(n.ident.to_string());
                self.paths.push(full);
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                full.push(r.ident.to_string());
                self.paths.push(full);
            }
            syn::UseTree::Glob(_) => self.paths.push(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for References {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }
    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.paths
            .push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_cfg_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }
    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        if !is_cfg_test(&i.attrs) {
            syn::visit::visit_item_impl(self, i);
        }
    }
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Mod(m) => &m.attrs,
        syn::Item::Fn(f) => &f.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Use(u) => &u.attrs,
        syn::Item::Struct(s) => &s.attrs,
        syn::Item::Enum(e) => &e.attrs,
        syn::Item::Const(c) => &c.attrs,
        syn::Item::Static(s) => &s.attrs,
        syn::Item::Trait(t) => &t.attrs,
        syn::Item::Type(t) => &t.attrs,
        _ => &[],
    }
}

/// `#[cfg(test)]` (also inside `all(...)`/`any(...)`).
fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && {
            let text = a.meta.require_list().map(|l| l.tokens.to_string());
            text.is_ok_and(|t| {
                t.split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|w| w == "test")
            })
        }
    })
}

/// The module a path names, from module `me`: `crate::a::b::X` → the
/// longest of `a::b`, `a` that is a module; `super::`/`self::` relative to
/// `me`. `None` for paths that name no module of this crate.
fn resolve(me: &str, path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    let mut base: Vec<&str> = if me.is_empty() {
        Vec::new()
    } else {
        me.split("::").collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    let mut full: Vec<&str> = base;
    full.extend(rest.iter().map(String::as_str));
    (0..=full.len())
        .rev()
        .map(|k| full[..k].join("::"))
        .find(|cand| modules.contains(cand))
}

/// Tarjan's strongly connected components over [`ModuleGraph::uses`].
struct Tarjan<'g> {
    graph: &'g ModuleGraph,
    index: BTreeMap<&'g str, usize>,
    low: BTreeMap<&'g str, usize>,
    stack: Vec<&'g str>,
    on_stack: BTreeSet<&'g str>,
    next: usize,
    found: Vec<Vec<String>>,
}

impl<'g> Tarjan<'g> {
    fn new(graph: &'g ModuleGraph) -> Self {
        Tarjan {
            graph,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            next: 0,
            found: Vec::new(),
        }
    }

    fn run(mut self) -> Vec<Vec<String>> {
        for v in self.graph.uses.keys() {
            if !self.index.contains_key(v.as_str()) {
                self.visit(v);
            }
        }
        self.found.sort();
        self.found
    }

    fn visit(&mut self, v: &'g str) {
        self.index.insert(v, self.next);
        self.low.insert(v, self.next);
        self.next += 1;
        self.stack.push(v);
        self.on_stack.insert(v);
        let targets = self.graph.uses.get(v).into_iter().flatten();
        for w in targets {
            let w = w.as_str();
            if !self.graph.uses.contains_key(w) {
                continue;
            }
            if !self.index.contains_key(w) {
                self.visit(w);
                let lw = self.low[w];
                let lv = self.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if self.on_stack.contains(w) {
                let iw = self.index[w];
                let lv = self.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if self.low[v] == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                self.found.push(component);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Issue numbers in text

/// Lines of `text` (1-based numbers) that speak of the project's issues by
/// number ("issue 7", "issues 5 and 6", "#12"-style tracker references
/// after the word issue) or of work "as it lands": docs and comments say
/// what things are, not which ticket brought them.
pub fn issue_mentions(text: &str) -> Vec<(usize, String)> {
    let re = regex::Regex::new(
        r"(?i)\bissues?\s*#?\d+|\bas (?:they|it) lands?\b|\bland(?:s)? with the issues?\b|\b(?:a|the) later issue\b|\bissues that follow\b",
    )
    .expect("a valid pattern");
    text.lines()
        .enumerate()
        .filter(|(_, l)| re.is_match(l))
        .map(|(i, l)| (i + 1, l.trim().to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// Steps that would read the system under test's variables

/// What a scenario step may not call: the controller's or the twin's
/// variables (the running session's plant or controller side, the
/// controller's in-process cluster status). Steps judge what instruments
/// measured and what travelled on the wire.
pub const UNDER_TEST_READS: &[&str] = &[
    ".plant()",
    ".controller()",
    "parts_mut(",
    ".parts()",
    "cluster_status(",
    "plant_mut(",
];

/// Lines of `text` (1-based, trimmed) that call one of `reads`, outside
/// comments.
pub fn under_test_reads(text: &str, reads: &[&str]) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or("");
            reads.iter().any(|r| code.contains(r))
        })
        .map(|(i, l)| (i + 1, l.trim().to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------
// Dependencies

/// A chain of packages from `from` to `to` in the workspace's resolved
/// dependency graph (`Cargo.lock` at `root`: the graph `cargo metadata`
/// resolves, normal, dev and build dependencies alike, read without a
/// network); `None`: `from` does not reach `to`.
pub fn dependency_path(
    root: &Path,
    from: &str,
    to: &str,
) -> Result<Option<Vec<String>>, StructureError> {
    let path = root.join("Cargo.lock");
    let text = std::fs::read_to_string(&path).map_err(|source| StructureError::Read {
        path: path.clone(),
        source,
    })?;
    let lock: toml::Table = text
        .parse()
        .map_err(|e| StructureError::Lock(format!("{}: {e}", path.display())))?;
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let packages = lock.get("package").and_then(toml::Value::as_array);
    for p in packages.into_iter().flatten() {
        let Some(name) = p.get("name").and_then(toml::Value::as_str) else {
            continue;
        };
        // A dependency reads `name` or `name version` (when ambiguous).
        let deps = p
            .get("dependencies")
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
            .filter_map(|d| d.split_whitespace().next())
            .map(str::to_owned);
        edges.entry(name.to_owned()).or_default().extend(deps);
    }
    if !edges.contains_key(from) {
        return Err(StructureError::Lock(format!(
            "{}: no package `{from}`",
            path.display()
        )));
    }
    Ok(path_between(&edges, from, to))
}

/// Breadth-first path from `from` to `to` over `edges`.
pub fn path_between(
    edges: &BTreeMap<String, Vec<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(p) = queue.pop_front() {
        if p == to {
            let mut chain = vec![to.to_owned()];
            let mut at = to;
            while let Some(prev) = came_from.get(at) {
                chain.push((*prev).to_owned());
                at = prev;
            }
            chain.reverse();
            return Some(chain);
        }
        for d in edges.get(p).into_iter().flatten() {
            if seen.insert(d.as_str()) {
                came_from.insert(d.as_str(), p);
                queue.push_back(d.as_str());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_of(files: &[(&str, &str)]) -> ModuleGraph {
        let dir =
            std::env::temp_dir().join(format!("structure-{}-{}", std::process::id(), files.len()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
        }
        let g = ModuleGraph::of_crate(&dir).expect("parses");
        let _ = std::fs::remove_dir_all(&dir);
        g
    }

    #[test]
    fn a_circle_through_crate_super_and_use_groups_is_found() {
        let g = graph_of(&[
            ("lib.rs", "pub mod a; pub mod b; pub mod c; pub mod d;"),
            ("a.rs", "use crate::{b::X, d};\npub struct A;"),
            ("b.rs", "pub struct X; fn f() -> super::c::C { todo!() }"),
            ("c.rs", "pub struct C(crate::a::A);"),
            ("d.rs", "#[cfg(test)]\nmod tests { use crate::a::A; }"),
        ]);
        assert_eq!(g.cycles(), vec![vec!["a", "b", "c"]]);
        assert!(g.uses["d"].is_empty(), "test code is not counted");
    }

    #[test]
    fn nested_modules_and_facades_are_not_circles() {
        let g = graph_of(&[
            ("lib.rs", "pub mod steps;"),
            (
                "steps/mod.rs",
                "mod fleet; pub use fleet::Fleet; pub struct World;",
            ),
            ("steps/fleet.rs", "pub struct Fleet(super::World);"),
        ]);
        assert_eq!(g.uses["steps::fleet"], BTreeSet::from(["steps".to_owned()]));
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn function_lengths_count_from_fn_to_the_closing_brace() {
        let text = "fn a() {\n}\nimpl X {\n    fn b(&self) {\n        let _ = 1;\n\n    }\n}\ntrait T { fn c() {} fn d(); }\n";
        let l = function_lengths(Path::new("x.rs"), text).expect("parses");
        let got: Vec<(&str, usize, usize)> = l
            .iter()
            .map(|f| (f.name.as_str(), f.line, f.lines))
            .collect();
        assert_eq!(got, vec![("a", 1, 2), ("b", 4, 4), ("c", 9, 1)]);
    }

    #[test]
    fn issue_numbers_are_found_and_plain_words_are_not() {
        let text = "// from issue 4 on\n// see issues 5 and 6\n// the issue is the cell\n// reports land with the issues that follow\n";
        let lines: Vec<usize> = issue_mentions(text).iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, vec![1, 2, 4]);
    }

    #[test]
    fn dependency_paths_are_found_transitively_or_not_at_all() {
        let edges: BTreeMap<String, Vec<String>> = [
            ("firmware", vec!["links"]),
            ("links", vec!["tokio"]),
            ("rigs", vec!["firmware"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
        .collect();
        assert_eq!(
            path_between(&edges, "rigs", "tokio"),
            Some(vec![
                "rigs".into(),
                "firmware".into(),
                "links".into(),
                "tokio".into()
            ])
        );
        assert_eq!(path_between(&edges, "firmware", "rigs"), None);
    }
}
