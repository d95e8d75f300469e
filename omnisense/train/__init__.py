"""Lightning tasks: one LightningModule (and its DataModule) per capability, built from typed YAML configs."""
