package hub

// SmallRoom is the size past which a room's members get an index.
const SmallRoom = smallRoom
