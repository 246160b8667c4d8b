;; A nested component and a core module with a table, a global and a start function.
(component
  (component $inner
    (core module $m (func (export "f")))
    (core instance $i (instantiate $m))
    (func (export "f") (canon lift (core func $i "f"))))
  (instance $x (instantiate $inner))
  (core module $n
    (table 1 funcref)
    (global (mut i32) (i32.const 0))
    (memory 1 2)
    (func $s (global.set 0 (i32.const 1)))
    (start $s))
  (core instance (instantiate $n))
  (export "f" (func $x "f"))
)
