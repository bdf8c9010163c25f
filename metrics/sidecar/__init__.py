"""The resource and queue sidecar: procfs and psutil sampling, queue probes, readings and their exposition."""
