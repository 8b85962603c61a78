module pipeloom.local/pipeloom

go 1.21
