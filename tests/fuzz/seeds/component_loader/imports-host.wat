;; Imports host's now (a function the engine links) and a function it does not have.
(component
  (import "firedrill:scenario/host@0.1.0" (instance $host
    (export "now" (func (result u64)))
  ))
  (import "firedrill:scenario/nope@0.1.0" (instance $nope
    (export "f" (func))
  ))
  (core func $now (canon lower (func $host "now")))
  (core module $m
    (import "host" "now" (func (result i64)))
    (func (export "f") (result i64) call 0))
  (core instance $i (instantiate $m (with "host" (instance (export "now" (func $now))))))
)
