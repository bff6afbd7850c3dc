//! Host bindings for `weft:pipeline/step`, generated from `wit/pipeline`.

wasmtime::component::bindgen!({
    path: "../../../wit/pipeline",
    world: "weft:pipeline/step",
    imports: { default: trappable },
});
