"""Chaos experiments: Chaos Toolkit experiment files whose probes, actions and controls are this
package's functions, each run against a platform of its own."""
