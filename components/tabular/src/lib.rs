//! CSV datasets for the example ML steps: read from an artifact (a file, or a directory holding
//! one `.csv`), split into numeric features and a label, write back as `data.csv`.

use std::path::{Path, PathBuf};

/// A table of strings with a header.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The CSV file an artifact path stands for: the path itself, or the one `.csv` in a directory,
/// or its one file whatever its name (steps in other languages name an output file after the
/// output, as KFP's `.path` does).
pub fn find_csv(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_dir() {
        return Ok(p.to_path_buf());
    }
    let files: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(|e| format!("{path}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    if let [only] = &files[..] {
        return Ok(only.clone());
    }
    let mut found: Vec<PathBuf> = files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(format!("{path}: no .csv file in this artifact")),
        _ => Err(format!("{path}: several .csv files in this artifact: {found:?}")),
    }
}

impl Table {
    pub fn read(artifact: &str) -> Result<Table, String> {
        let file = find_csv(artifact)?;
        let shown = file.display().to_string();
        let mut r = csv::Reader::from_path(&file).map_err(|e| format!("{shown}: {e}"))?;
        let header = r.headers().map_err(|e| format!("{shown}: {e}"))?.iter().map(str::to_string).collect();
        let mut rows = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| format!("{shown}: row {}: {e}", i + 2))?;
            rows.push(rec.iter().map(str::to_string).collect());
        }
        Ok(Table { header, rows })
    }

    /// Writes `<dir>/data.csv`.
    pub fn write(&self, dir: &str) -> Result<(), String> {
        let dest = format!("{dir}/data.csv");
        let mut w = csv::Writer::from_path(&dest).map_err(|e| format!("{dest}: {e}"))?;
        w.write_record(&self.header).map_err(|e| format!("{dest}: {e}"))?;
        for row in &self.rows {
            w.write_record(row).map_err(|e| format!("{dest}: {e}"))?;
        }
        w.flush().map_err(|e| format!("{dest}: {e}"))
    }

    pub fn column(&self, name: &str) -> Result<usize, String> {
        self.header.iter().position(|h| h == name).ok_or_else(|| format!("no column `{name}` (columns: {:?})", self.header))
    }

    /// Feature matrix (every column but `label`, parsed as numbers) and label column.
    pub fn features_and_labels(&self, label: &str) -> Result<(Vec<String>, Vec<Vec<f64>>, Vec<String>), String> {
        let l = self.column(label)?;
        let names: Vec<String> = self.header.iter().enumerate().filter(|(i, _)| *i != l).map(|(_, h)| h.clone()).collect();
        let mut x = Vec::with_capacity(self.rows.len());
        let mut y = Vec::with_capacity(self.rows.len());
        for (r, row) in self.rows.iter().enumerate() {
            let mut feats = Vec::with_capacity(names.len());
            for (i, v) in row.iter().enumerate() {
                if i == l {
                    continue;
                }
                feats.push(v.parse::<f64>().map_err(|_| format!("row {}: `{v}` in column `{}` is not a number", r + 2, self.header[i]))?);
            }
            x.push(feats);
            y.push(row[l].clone());
        }
        Ok((names, x, y))
    }
}

/// A small deterministic PRNG (xorshift64*), so steps shuffle the same way for the same seed
/// without asking the host for entropy.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// A multinomial logistic-regression model, as `model.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub features: Vec<String>,
    pub classes: Vec<String>,
    /// `weights[class][feature]`.
    pub weights: Vec<Vec<f64>>,
    pub bias: Vec<f64>,
}

impl Model {
    /// Class probabilities for one row.
    pub fn predict_proba(&self, x: &[f64]) -> Vec<f64> {
        let logits: Vec<f64> = self.weights.iter().zip(&self.bias).map(|(w, b)| b + w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>()).collect();
        softmax(&logits)
    }

    pub fn predict(&self, x: &[f64]) -> usize {
        let p = self.predict_proba(x);
        (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0)
    }

    pub fn to_json(&self) -> String {
        let list = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(",");
        let nums = |v: &[f64]| v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(",");
        format!(
            "{{\"kind\":\"logistic-regression\",\"features\":[{}],\"classes\":[{}],\"weights\":[{}],\"bias\":[{}]}}\n",
            list(&self.features),
            list(&self.classes),
            self.weights.iter().map(|w| format!("[{}]", nums(w))).collect::<Vec<_>>().join(","),
            nums(&self.bias)
        )
    }

    /// Parses what `to_json` wrote (a fixed shape, so no JSON library is needed in the guest).
    pub fn from_json(text: &str) -> Result<Model, String> {
        let field = |name: &str| -> Result<&str, String> {
            let key = format!("\"{name}\":[");
            let start = text.find(&key).ok_or_else(|| format!("model.json lacks `{name}`"))? + key.len();
            let mut depth = 1;
            for (i, c) in text[start..].char_indices() {
                match c {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(&text[start..start + i]);
                        }
                    }
                    _ => {}
                }
            }
            Err(format!("model.json: unterminated `{name}`"))
        };
        let strings = |s: &str| -> Vec<String> {
            s.split(',').map(|x| x.trim().trim_matches('"').to_string()).filter(|x| !x.is_empty()).collect()
        };
        let numbers = |s: &str| -> Result<Vec<f64>, String> {
            s.split(',').filter(|x| !x.trim().is_empty()).map(|x| x.trim().parse::<f64>().map_err(|e| format!("model.json: {e}"))).collect()
        };
        let weights_text = field("weights")?;
        let weights = weights_text
            .split(']')
            .map(|row| row.trim_start_matches([',', '[', ' ']))
            .filter(|row| !row.is_empty())
            .map(numbers)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Model { features: strings(field("features")?), classes: strings(field("classes")?), weights, bias: numbers(field("bias")?)? })
    }
}

pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_json_round_trips() {
        let m = Model {
            features: vec!["a".into(), "b".into()],
            classes: vec!["x".into(), "y".into(), "z".into()],
            weights: vec![vec![0.5, -1.25], vec![1e-3, 2.0], vec![0.0, -0.0]],
            bias: vec![0.1, 0.2, -0.3],
        };
        assert_eq!(Model::from_json(&m.to_json()).unwrap(), m);
    }
}
