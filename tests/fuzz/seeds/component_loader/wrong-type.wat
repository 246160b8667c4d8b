;; describe and run exported with the wrong types.
(component
  (core module $m
    (memory (export "memory") 1)
    (data (i32.const 256) "noop0.1.0")
    (func (export "describe") (result i32) i32.const 64)
    (func (export "run") (result i32) i32.const 128))
  (core instance $i (instantiate $m))
  (func (export "describe") (result u32) (canon lift (core func $i "describe")))
  (func (export "run") (result s32) (canon lift (core func $i "run")))
)
