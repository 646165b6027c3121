//! What `Given` steps configure: the house, its pack and PV files and the
//! controller's configuration, held as TOML tables taken from the rig's
//! scenario and edited step by step, then written into the scenario's
//! directory (so every scenario leaves the exact files it ran with).
//!
//! Steps edit the tables; they read them through typed views: the house's
//! DC bus as the twin reads it ([`HouseView`]), the controller's
//! configuration as the firmware reads it, or a small view of their own
//! ([`typed_view`]), with errors that name the file and the key.
//!
//! Uses the rig file (where the base files are) and the twin's and
//! firmware's configuration types; no step or world state.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::{Table, Value};
use twin::bus::{BusConfig, UsbSocketConfig};

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

/// `table` read as `T` (keys `T` does not name are left alone); an error
/// names `file`, the key at fault and what is wrong with it.
pub fn typed_view<T: DeserializeOwned>(table: &Table, file: &Path) -> Result<T, String> {
    serde_path_to_error::deserialize(Value::Table(table.clone())).map_err(|e| {
        let key = e.path().to_string();
        if key == "." {
            format!("{}: {}", file.display(), e.inner())
        } else {
            format!("{}: `{key}`: {}", file.display(), e.inner())
        }
    })
}

/// Multiplies each `(key, factor)` of `t` that holds a number by its factor
/// (as a float); keys `t` lacks stay absent.
pub fn scale_numbers(t: &mut Table, factors: &[(&str, f64)]) {
    for (key, factor) in factors {
        let number = match t.get(*key) {
            Some(Value::Float(v)) => *v,
            Some(Value::Integer(v)) => *v as f64,
            _ => continue,
        };
        t.insert((*key).into(), Value::Float(number * factor));
    }
}

/// The table in `entries` (an array of tables) whose `name` is `name`.
pub fn named_entry<'a>(entries: &'a mut [Value], name: &str) -> Option<&'a mut Table> {
    entries
        .iter_mut()
        .filter_map(Value::as_table_mut)
        .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
}

/// The `name`s of `entries` (an array of tables), in order.
pub fn entry_names(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect()
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

    /// The house as the steps read it (its DC bus, as the twin reads it).
    pub fn house_view(&self) -> Result<HouseView, String> {
        typed_view(&self.house, &self.house_path)
    }

    /// The controller configuration read as `T`: the firmware's
    /// [`firmware::ControllerConfig`] (not validated: the controller does
    /// that when it starts), or a step's own view of a few keys.
    pub fn controller_view<T: DeserializeOwned>(&self) -> Result<T, String> {
        typed_view(&self.controller, &self.controller_path)
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

/// The house as the steps read it: its DC bus, as the twin reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct HouseView {
    pub bus: BusConfig,
}

impl HouseView {
    /// The circuits' names in bus order (the controller's circuit indices).
    pub fn circuit_names(&self) -> impl Iterator<Item = &str> + Clone {
        self.bus.circuits.iter().map(|c| c.name.as_str())
    }

    /// The sockets in bus order (the controller's socket indices).
    pub fn sockets(&self) -> impl Iterator<Item = &UsbSocketConfig> + Clone {
        self.bus.circuits.iter().flat_map(|c| &c.usb_sockets)
    }

    /// Index of the circuit `name`.
    pub fn circuit_index(&self, name: &str) -> Result<usize, String> {
        index_of("circuit", name, self.circuit_names())
    }

    /// Index of the socket `name`.
    pub fn socket_index(&self, name: &str) -> Result<usize, String> {
        index_of("socket", name, self.sockets().map(|s| s.name.as_str()))
    }

    /// The socket `name`.
    pub fn socket(&self, name: &str) -> Result<&UsbSocketConfig, String> {
        let i = self.socket_index(name)?;
        self.sockets()
            .nth(i)
            .ok_or_else(|| format!("there is no `{name}` socket"))
    }

    /// Index of the end device `name`.
    pub fn device_index(&self, name: &str) -> Result<usize, String> {
        index_of(
            "device",
            name,
            self.bus.devices.iter().map(|d| d.name.as_str()),
        )
    }
}

/// Where `name` stands among `names`; else an error listing them.
fn index_of<'a>(
    what: &str,
    name: &str,
    names: impl Iterator<Item = &'a str> + Clone,
) -> Result<usize, String> {
    names.clone().position(|n| n == name).ok_or_else(|| {
        format!(
            "there is no `{name}` {what} (the house has: {})",
            names.collect::<Vec<_>>().join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUSE: &str = r#"
name = "test"
[bus]
capacitance_f = 0.05
[[bus.circuits]]
name = "lights"
length_m = 20.0
cross_section_mm2 = 1.0
breaker = { rating_a = 6.0 }
[[bus.circuits]]
name = "desk"
length_m = 15.0
cross_section_mm2 = 2.5
breaker = { rating_a = 10.0 }
usb_sockets = [{ name = "left", budget_w = 100.0, idle_w = 0.5 }, { name = "right", budget_w = 65.0 }]
[[bus.devices]]
name = "laptop"
kind = "laptop"
"#;

    fn house() -> HouseView {
        let table: Table = HOUSE.parse().unwrap();
        typed_view(&table, Path::new("house.toml")).unwrap()
    }

    #[test]
    fn the_house_view_finds_circuits_sockets_and_devices_in_bus_order() {
        let h = house();
        assert_eq!(h.circuit_names().collect::<Vec<_>>(), ["lights", "desk"]);
        assert_eq!(h.circuit_index("desk"), Ok(1));
        assert_eq!(h.socket_index("right"), Ok(1));
        assert_eq!(h.device_index("laptop"), Ok(0));
        // The twin's own default where the file sets none.
        assert_eq!(h.socket("left").map(|s| s.idle_w), Ok(0.5));
        assert_eq!(h.socket("right").map(|s| s.idle_w), Ok(0.3));
        let e = h.socket_index("sofa").unwrap_err();
        assert_eq!(e, "there is no `sofa` socket (the house has: left, right)");
        assert!(h.circuit_index("left").is_err());
    }

    #[test]
    fn a_typed_view_names_the_file_and_the_key_at_fault() {
        let mut table: Table = HOUSE.parse().unwrap();
        let circuits = array(section(&mut table, "bus"), "circuits");
        if let Some(Value::Table(desk)) = circuits.get_mut(1) {
            desk.insert("length_m".into(), Value::String("far".into()));
        }
        let e = typed_view::<HouseView>(&table, Path::new("house.toml")).unwrap_err();
        assert!(
            e.starts_with("house.toml: `bus.circuits[1].length_m`: "),
            "{e}"
        );
        let e = typed_view::<HouseView>(&Table::new(), Path::new("house.toml")).unwrap_err();
        assert!(e.starts_with("house.toml: ") && e.contains("`bus`"), "{e}");
    }

    #[test]
    fn scaling_multiplies_the_numbers_present_and_leaves_the_rest() {
        let mut t: Table = "a = 2.0\nb = 3\nname = \"x\"".parse().unwrap();
        scale_numbers(&mut t, &[("a", 0.5), ("b", 2.0), ("name", 2.0), ("c", 2.0)]);
        assert_eq!(t.get("a"), Some(&Value::Float(1.0)));
        assert_eq!(t.get("b"), Some(&Value::Float(6.0)));
        assert_eq!(t.get("name"), Some(&Value::String("x".into())));
        assert!(t.get("c").is_none());
    }

    #[test]
    fn named_entries_are_found_for_editing() {
        let mut t: Table = HOUSE.parse().unwrap();
        let circuits = array(section(&mut t, "bus"), "circuits");
        assert_eq!(entry_names(circuits), ["lights", "desk"]);
        let desk = named_entry(circuits, "desk").unwrap();
        desk.insert("length_m".into(), Value::Float(5.0));
        assert!(named_entry(circuits, "attic").is_none());
        assert_eq!(house_length_m(&t, 1), 5.0);
    }

    fn house_length_m(t: &Table, circuit: usize) -> f64 {
        let h: HouseView = typed_view(t, Path::new("house.toml")).unwrap();
        h.bus.circuits[circuit].length_m
    }
}
