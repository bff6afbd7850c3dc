//! A component that is not a pipeline step; tests check the host names its exports when refusing it.
wit_bindgen::generate!({ path: "wit", world: "greeter" });

struct Greeter;

impl exports::example::greeter::greet::Guest for Greeter {
    fn hello(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Greeter);
