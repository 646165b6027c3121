//! What `Given` steps configure: the house, its pack and PV files and the
//! controller's configuration, held as TOML tables taken from the rig's
//! scenario and edited step by step, then written into the scenario's
//! directory (so every scenario leaves the exact files it ran with).

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::rig::Rig;

/// The scenario's configuration under construction.
#[derive(Debug, Clone)]
pub struct Setup {
    pub house: Table,
    house_path: PathBuf,
    pub pack: Table,
    pack_path: PathBuf,
    pub pv: Option<Table>,
    pv_path: Option<PathBuf>,
    pub controller: Table,
    controller_path: PathBuf,
}

fn read_table(path: &Path) -> Result<Table, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    text.parse::<Table>()
        .map_err(|e| format!("{}: not valid TOML: {e}", path.display()))
}

fn relative_to(base: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}

fn str_at<'a>(t: &'a Table, section: &str, key: &str) -> Option<&'a str> {
    t.get(section)?.as_table()?.get(key)?.as_str()
}

/// `t[section]`, created if missing.
pub fn section<'a>(t: &'a mut Table, name: &str) -> &'a mut Table {
    let v = t
        .entry(name.to_owned())
        .or_insert_with(|| Value::Table(Table::new()));
    if !v.is_table() {
        *v = Value::Table(Table::new());
    }
    match v {
        Value::Table(t) => t,
        _ => unreachable!("replaced by a table above"),
    }
}

/// `t[name]` as an array of tables, created if missing.
pub fn array<'a>(t: &'a mut Table, name: &str) -> &'a mut Vec<Value> {
    let v = t
        .entry(name.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !v.is_array() {
        *v = Value::Array(Vec::new());
    }
    match v {
        Value::Array(a) => a,
        _ => unreachable!("replaced by an array above"),
    }
}

impl Setup {
    /// The rig's scenario and controller configuration, as files say.
    pub fn from_rig(rig: &Rig) -> Result<Setup, String> {
        let house_path = rig.scenario.clone();
        let house = read_table(&house_path)?;
        let pack_rel = str_at(&house, "battery", "pack")
            .ok_or_else(|| format!("{}: [battery] has no `pack`", house_path.display()))?;
        let pack_path = relative_to(&house_path, pack_rel);
        let pack = read_table(&pack_path)?;
        let (pv, pv_path) = match str_at(&house, "pv", "plant") {
            Some(rel) => {
                let p = relative_to(&house_path, rel);
                (Some(read_table(&p)?), Some(p))
            }
            None => (None, None),
        };
        let controller_path = rig.controller.config.clone().ok_or_else(|| {
            format!(
                "rig `{}` names no controller config ([controller] config = ...); scenarios need one to configure",
                rig.name
            )
        })?;
        let controller = read_table(&controller_path)?;
        Ok(Setup {
            house,
            house_path,
            pack,
            pack_path,
            pv,
            pv_path,
            controller,
            controller_path,
        })
    }

    /// Replaces the house's pack with the pack file `file_name` that sits
    /// beside the current one (e.g. `nmc_pack.toml` beside
    /// `lfp_home_16s.toml` in `twin/params/`).
    pub fn use_sibling_pack(&mut self, file_name: &str) -> Result<(), String> {
        let path = self
            .pack_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(file_name);
        self.pack = read_table(&path).map_err(|e| {
            format!("{e} (the {file_name} pack is looked for beside the rig's pack file)")
        })?;
        self.pack_path = path;
        Ok(())
    }

    /// A TOML file beside the controller configuration (e.g.
    /// `chemistry/nmc811_21700_5ah.toml` beside `firmware/config/terrace.toml`).
    pub fn controller_sibling(&self, rel: &str) -> Result<Table, String> {
        let path = relative_to(&self.controller_path, rel);
        read_table(&path)
            .map_err(|e| format!("{e} (looked for beside the rig's controller configuration)"))
    }

    /// Removes the PV array from the house.
    pub fn remove_pv(&mut self) {
        self.house.remove("pv");
        self.pv = None;
    }

    /// Writes `house.toml`, `pack.toml`, `pv.toml` and `controller.toml`
    /// into `dir` (paths inside made absolute) and returns the house and
    /// controller paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        let abs = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
        let write = |name: &str, t: &Table| -> Result<PathBuf, String> {
            let p = dir.join(name);
            let text =
                toml::to_string_pretty(t).map_err(|e| format!("{name}: cannot serialise: {e}"))?;
            std::fs::write(&p, text).map_err(|e| format!("{}: cannot write: {e}", p.display()))?;
            Ok(p)
        };
        let mut pack = self.pack.clone();
        if let Some(cell) = pack.get("cell").and_then(Value::as_str) {
            let p = abs(relative_to(&self.pack_path, cell));
            pack.insert("cell".into(), Value::String(p.display().to_string()));
        }
        let pack_file = write("pack.toml", &pack)?;
        let mut house = self.house.clone();
        section(&mut house, "battery").insert(
            "pack".into(),
            Value::String(abs(pack_file).display().to_string()),
        );
        if let (Some(pv), Some(pv_path)) = (&self.pv, &self.pv_path) {
            let mut pv = pv.clone();
            let arr = section(&mut pv, "array");
            if let Some(m) = arr.get("module").and_then(Value::as_str) {
                let p = abs(relative_to(pv_path, m));
                arr.insert("module".into(), Value::String(p.display().to_string()));
            }
            let pv_file = write("pv.toml", &pv)?;
            section(&mut house, "pv").insert(
                "plant".into(),
                Value::String(abs(pv_file).display().to_string()),
            );
        }
        let house_file = write("house.toml", &house)?;
        let controller_file = write("controller.toml", &self.controller)?;
        Ok((abs(house_file), abs(controller_file)))
    }

    /// Where the base files came from (for messages).
    pub fn sources(&self) -> String {
        format!(
            "{} and {}",
            self.house_path.display(),
            self.controller_path.display()
        )
    }
}
