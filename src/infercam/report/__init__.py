"""Report writers: a self-contained HTML page of CAM results and the pictures it shows."""
