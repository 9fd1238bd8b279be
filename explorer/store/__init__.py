"""The on-disk store: metadata, layers and their file index, images, containers, volumes."""
