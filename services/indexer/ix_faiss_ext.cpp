// placeholder
namespace muri_placeholder {}
