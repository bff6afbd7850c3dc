//! Trains a one-hidden-layer MLP classifier through the GPU bridge (`weft:tensor`): the tensors
//! and their gradients live on the host's device; this component only holds handles. Reports
//! the loss curve as metrics.
//!
//! Inputs: `train` (Dataset). Params: `label` (string), `hidden` (int, default 16), `epochs`
//! (int, default 200), `learning_rate` (float, default 0.05), `optimizer` (`adam`, the default,
//! or `sgd` with momentum 0.9), `weight_decay` (float, default 0: Adam's decoupled weight
//! decay), `seed` (int, default 1).
//! Outputs: `model` (Model: `model.safetensors` with `w1`, `b1`, `w2`, `b2`, and `model.json`
//! naming features and classes); params `final_loss`, `accuracy` (on the training set),
//! `backend` (the device that computed), `world_size`.
//!
//! Data-parallel as a worker of a training job (`weft:tensor/collective`): each rank trains on
//! its shard of the rows, its loss weighted by its share, and the gradients are summed across
//! ranks before every step, so every rank takes the step one worker would take on all the rows
//! and the ranks' parameters stay equal (the same seed initialises them).
//!
//! As a worker of a job that asks for checkpoints (`weft:tensor/checkpoint`), it saves its
//! parameters and Adam/SGD state every `every()` epochs and, restarted after a failure,
//! restores the latest and goes on from there. Fault injection for testing that: `fail_at_epoch`
//! (int) makes rank `fail_rank` (default 0) trap at that epoch when it started without a
//! checkpoint (a transient fault: a restart from a checkpoint gets past it).
use weft_step::checkpoint;
use weft_step::collective::{self, ReduceOp};
use weft_step::tensor::{self, BinaryOp, Dtype, Optimizer, Tensor, UnaryOp};
use weft_step::{out_param, report, shard, Guest, ParamValue, StepInput, StepOutput};
use weft_tabular::{Rng, Table};

struct Train;

fn err(e: tensor::Error) -> String {
    match e {
        tensor::Error::Shape(m) => format!("tensor shape: {m}"),
        tensor::Error::Quota(m) => format!("tensor memory: {m}"),
        tensor::Error::Format(m) => format!("tensor data: {m}"),
    }
}

fn collective_err(e: collective::Error) -> String {
    match e {
        collective::Error::NotInJob(m) | collective::Error::Mismatch(m) | collective::Error::Peer(m) => format!("collective: {m}"),
        collective::Error::Shape(m) => format!("collective shape: {m}"),
        collective::Error::Quota(m) => format!("tensor memory: {m}"),
    }
}

fn checkpoint_err(e: checkpoint::Error) -> String {
    match e {
        checkpoint::Error::NotInJob(m) | checkpoint::Error::Format(m) | checkpoint::Error::Store(m) => format!("checkpoint: {m}"),
        checkpoint::Error::Quota(m) => format!("tensor memory: {m}"),
    }
}

fn upload(values: &[f32], shape: &[u32], requires_grad: bool) -> Result<Tensor, String> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Tensor::from_bytes(&bytes, Dtype::F32, shape, requires_grad).map_err(err)
}

fn download(t: &Tensor) -> Vec<f32> {
    t.to_bytes().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Uniform in ±sqrt(1/fan_in), from the step's seed.
fn init(rng: &mut Rng, rows: u32, cols: u32) -> Result<Tensor, String> {
    let scale = (1.0 / rows as f64).sqrt();
    let values: Vec<f32> = (0..rows * cols).map(|_| (((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale) as f32).collect();
    upload(&values, &[rows, cols], true)
}

impl Guest for Train {
    fn run(input: StepInput) -> Result<StepOutput, String> {
        let label = input.str_param("label")?;
        let hidden = input.int_param_or("hidden", 16)?;
        let epochs = input.int_param_or("epochs", 200)?;
        let lr = input.float_param_or("learning_rate", 0.05)?;
        let seed = input.int_param_or("seed", 1)?;
        let weight_decay = input.float_param_or("weight_decay", 0.0)?;
        if !(weight_decay >= 0.0 && weight_decay.is_finite()) {
            return Err(format!("`weight_decay` must be a number >= 0, got {weight_decay}"));
        }
        if hidden <= 0 || epochs <= 0 {
            return Err(format!("`hidden` and `epochs` must be positive, got {hidden} and {epochs}"));
        }
        let table = Table::read(input.input("train")?)?;
        let (features, x, y) = table.features_and_labels(label)?;
        if x.is_empty() {
            return Err("the training set is empty".into());
        }
        let mut classes = y.clone();
        classes.sort();
        classes.dedup();
        let targets: Vec<u32> = y.iter().map(|c| classes.binary_search(c).unwrap() as u32).collect();
        let (n, d, k, h) = (x.len() as u32, features.len() as u32, classes.len() as u32, hidden as u32);

        let flat: Vec<f32> = x.iter().flatten().map(|&v| v as f32).collect();
        let xs = upload(&flat, &[n, d], false)?;
        // This rank's rows, and its share of the mean loss.
        let world = collective::world_size();
        let rows = shard(n as usize, collective::rank() as usize, world as usize);
        if rows.is_empty() {
            return Err(format!("{n} rows cannot be shared by {world} workers: each needs at least one"));
        }
        let share = rows.len() as f32 / n as f32;
        let xs_local = upload(&flat[rows.start * d as usize..rows.end * d as usize], &[rows.len() as u32, d], false)?;
        let ts_local = tensor::one_hot(&targets[rows.clone()], k).map_err(err)?;
        let mut rng = Rng::new(seed as u64);
        let mut w1 = init(&mut rng, d, h)?;
        let mut b1 = upload(&vec![0.0; h as usize], &[h], true)?;
        let mut w2 = init(&mut rng, h, k)?;
        let mut b2 = upload(&vec![0.0; k as usize], &[k], true)?;
        let forward = |xs: &Tensor, w1: &Tensor, b1: &Tensor, w2: &Tensor, b2: &Tensor| -> Result<Tensor, String> {
            let z1 = tensor::binary(BinaryOp::Add, &tensor::matmul(xs, w1).map_err(err)?, b1).map_err(err)?;
            let a1 = tensor::unary(UnaryOp::Relu, &z1).map_err(err)?;
            tensor::binary(BinaryOp::Add, &tensor::matmul(&a1, w2).map_err(err)?, b2).map_err(err)
        };
        let optimizer = match input.str_param_or("optimizer", "adam")? {
            "adam" => Optimizer::adam(lr as f32, weight_decay as f32),
            "sgd" => Optimizer::sgd(lr as f32, 0.9),
            other => return Err(format!("`optimizer` must be adam or sgd, got `{other}`")),
        };
        // A restarted worker goes on from the job's latest checkpoint.
        let mut first = 0;
        if let Some((step, named)) = checkpoint::restore(Some(&optimizer)).map_err(checkpoint_err)? {
            for (name, t) in named {
                match name.as_str() {
                    "w1" => w1 = t,
                    "b1" => b1 = t,
                    "w2" => w2 = t,
                    "b2" => b2 = t,
                    other => return Err(format!("checkpoint: unknown parameter `{other}`")),
                }
            }
            first = step;
            weft_step::info(&format!("restored the checkpoint of epoch {step}"));
        }
        let every = checkpoint::every() as u64;
        let fail_at = input.int_param_or("fail_at_epoch", -1)?;
        // A transient fault: only in a worker that did not restore a checkpoint.
        let fail_here = first == 0 && collective::rank() as i64 == input.int_param_or("fail_rank", 0)?;
        let mut loss_value = f32::NAN;
        for epoch in first..epochs as u64 {
            if fail_here && epoch as i64 == fail_at {
                panic!("fault injected at epoch {epoch} (fail_at_epoch)");
            }
            let local = tensor::cross_entropy(&forward(&xs_local, &w1, &b1, &w2, &b2)?, &ts_local).map_err(err)?;
            let loss = tensor::scale(&local, share).map_err(err)?;
            let grads = tensor::backward(&loss).map_err(err)?;
            let params = [&w1, &b1, &w2, &b2];
            if world > 1 {
                collective::all_reduce_gradients(&grads, &params, ReduceOp::Sum).map_err(collective_err)?;
                loss_value = download(&collective::all_reduce(&loss, ReduceOp::Sum).map_err(collective_err)?)[0];
            } else {
                loss_value = download(&loss)[0];
            }
            optimizer.step(&params, &grads);
            if every > 0 && (epoch + 1) % every == 0 {
                let named = [("w1".to_string(), &w1), ("b1".to_string(), &b1), ("w2".to_string(), &w2), ("b2".to_string(), &b2)];
                checkpoint::save(epoch + 1, &named.iter().map(|(n, t)| (n.clone(), *t)).collect::<Vec<_>>(), Some(&optimizer)).map_err(checkpoint_err)?;
            }
            if epoch % 10 == 0 || epoch + 1 == epochs as u64 {
                report("loss", loss_value as f64, Some(epoch));
            }
        }
        let logits = download(&forward(&xs, &w1, &b1, &w2, &b2)?);
        let correct = targets
            .iter()
            .enumerate()
            .filter(|(i, &t)| {
                let row = &logits[i * k as usize..(i + 1) * k as usize];
                (0..k as usize).max_by(|&a, &b| row[a].total_cmp(&row[b])) == Some(t as usize)
            })
            .count();
        let accuracy = correct as f64 / n as f64;
        report("accuracy", accuracy, None);

        let dir = input.output("model")?;
        let weights = tensor::save(&[("w1".into(), &w1), ("b1".into(), &b1), ("w2".into(), &w2), ("b2".into(), &b2)]).map_err(err)?;
        std::fs::write(format!("{dir}/model.safetensors"), weights).map_err(|e| format!("{dir}/model.safetensors: {e}"))?;
        let list = |v: &[String]| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(",");
        let meta = format!("{{\"kind\":\"mlp\",\"hidden\":{h},\"features\":[{}],\"classes\":[{}]}}\n", list(&features), list(&classes));
        std::fs::write(format!("{dir}/model.json"), meta).map_err(|e| format!("{dir}/model.json: {e}"))?;
        Ok(StepOutput {
            params: vec![
                out_param("final_loss", ParamValue::Float(loss_value as f64)),
                out_param("accuracy", ParamValue::Float(accuracy)),
                out_param("backend", ParamValue::Str(tensor::backend())),
                out_param("world_size", ParamValue::Int(world as i64)),
            ],
        })
    }
}

weft_step::export!(Train with_types_in weft_step::bindings);
