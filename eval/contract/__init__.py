"""What crosses a process: the `Task` a worker runs and the long-format rows it returns (below the bench)."""
