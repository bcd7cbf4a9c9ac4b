#include "vadPluginCommon.h"

namespace vad
{
namespace plugin
{
namespace
{
nvinfer1::ILoggerFinder* gLoggerFinder{nullptr};
} // namespace

void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    gLoggerFinder = finder;
}

void logError(std::string const& message) noexcept
{
    nvinfer1::ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
    if (logger != nullptr)
    {
        logger->log(nvinfer1::ILogger::Severity::kERROR, ("[vad plugin] " + message).c_str());
    }
}

} // namespace plugin
} // namespace vad
